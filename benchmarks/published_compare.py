"""Quality per millisecond against the published efficient-SR networks, timed side by side on this machine.

Issue 13's targets are CARN-M's published PSNR; FSRCNN is the classic fast anchor. This rebuilds both
(`reference_networks.py`, random weights: speed does not depend on them), times every network of a scale on
the input that makes one output frame (1280x720 by default), interleaved over rounds in one process, as the
engine runs a whole frame (inference mode, the same threads; every network in both memory layouts, and FSRCNN
also with its transposed convolution written as a sub-pixel one, each credited with its fastest form), and
prints one table per scale: time, the ratio to CARN-M, parameters, and Set5 / Set14 PSNR, ours as `upscale
eval` measured it (the model's config), theirs as published (trained on other data, which the table says).

    python benchmarks/published_compare.py --frame 1280x720 --rounds 7

Time it on an idle machine. Network time only: reading, writing and colour conversion are left out for all.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from interleaved import interleaved_medians  # noqa: E402
from reference_networks import FORMS, PUBLISHED, TRAINED_ON, reference_network  # noqa: E402

from upscale.engine import Upscaler  # noqa: E402
from upscale.models import load, packaged_models  # noqa: E402


def our_network(spec: str, threads: int) -> tuple[torch.nn.Module, int, tuple[float, float]]:
    """A model as the engine prepares it (folded, eval), its scale and its measured Set5 / Set14 PSNR."""
    upscaler = Upscaler(load(spec), device="cpu", precision="fp32", tile=0, threads=threads)
    metrics = upscaler.config.get("metrics", {})
    return upscaler.model, upscaler.scale, (metrics.get("Set5", {}).get("psnr"), metrics.get("Set14", {}).get("psnr"))


def frame_input(scale: int, frame: tuple[int, int], channels: int) -> torch.Tensor:
    width, height = frame
    return torch.rand(1, channels, round(height / scale), round(width / scale))


def in_layouts(form: str, net: torch.nn.Module, x: torch.Tensor) -> dict[str, tuple[torch.nn.Module, torch.Tensor]]:
    """The network and its input in both memory layouts (each network is credited with its faster one)."""
    return {", ".join(filter(None, [form, layout])):
            (copy.deepcopy(net).to(memory_format=fmt), x.contiguous(memory_format=fmt))
            for layout, fmt in (("channels-last", torch.channels_last), ("contiguous", torch.contiguous_format))}


def compare_scale(scale: int, ours: dict[str, tuple], frame: tuple[int, int], threads: int,
                  rounds: int) -> list[dict]:
    """`ours`: spec -> `our_network`'s (module, scale, PSNR), loaded once for every scale."""
    rows = []
    for spec, (net, net_scale, psnr) in ours.items():
        if net_scale == scale:
            rows.append({"name": f"`{spec}`", "psnr": psnr, "source": "measured (`upscale eval`)",
                         "variants": in_layouts("", net, frame_input(scale, frame, 3))})
    for name, forms in FORMS.items():
        variants = {}
        for form in forms:
            net = reference_network(name, scale, form)
            variants.update(in_layouts(form, net, frame_input(scale, frame, net.channels)))
        rows.append({"name": name, "psnr": PUBLISHED[name, scale], "variants": variants,
                     "source": f"published (trained on {TRAINED_ON[name]})"})
    torch.set_num_threads(threads)
    calls = {(row["name"], variant): (lambda n=net, x=x: n(x))
             for row in rows for variant, (net, x) in row["variants"].items()}
    with torch.inference_mode():
        times = interleaved_medians(calls, rounds)
    for row in rows:
        row["ms"], row["form"] = min((times[row["name"], variant], variant) for variant in row["variants"])
        row["params"] = sum(p.numel() for p in next(iter(row["variants"].values()))[0].parameters())
    return rows


def table(scale: int, rows: list[dict], frame: tuple[int, int]) -> str:
    anchor = next(row["ms"] for row in rows if row["name"] == "CARN-M")
    lines = [f"x{scale}, a {frame[0]}x{frame[1]} output frame (network only):", "",
             "| network | ms per frame | time vs CARN-M | params | Set5 / Set14 PSNR | PSNR from | fastest form |",
             "|---|---|---|---|---|---|---|"]
    for row in sorted(rows, key=lambda r: r["ms"]):
        set5, set14 = row["psnr"]
        psnr = f"{set5:.2f} / {set14:.2f}" if set5 is not None and set14 is not None else "not recorded"
        lines.append(f"| {row['name']} | {row['ms']:.1f} | {row['ms'] / anchor:.2f}x | {row['params']:,} | {psnr} "
                     f"| {row['source']} | {row['form']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frame", default="1280x720", help="output frame WxH")
    parser.add_argument("--scale", type=int, action="append", choices=(2, 3, 4), help="[default: 2 3 4]")
    parser.add_argument("--model", action="append", help="our models to time [default: every packaged model]")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    frame = tuple(int(side) for side in args.frame.lower().split("x"))
    ours = {spec: our_network(spec, args.threads) for spec in args.model or packaged_models()}
    for scale in args.scale or [2, 3, 4]:
        print(table(scale, compare_scale(scale, ours, frame, args.threads, args.rounds), frame), end="\n\n")
    print(f"Command: `python benchmarks/published_compare.py {' '.join(argv if argv is not None else sys.argv[1:])}`")


if __name__ == "__main__":
    main()
