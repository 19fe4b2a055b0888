"""Every route to a factor, side by side: does each packaged model beat the cheaper ways to its factor?

A user who wants x3 can run the x3 model, or the x2 model and a resize (`--scale 2 --outscale 3`), or the x4
model and a shrink. For each factor this scores every packaged model's route to it with `upscale eval
--outscale` (LR made at the factor, the model, the engine's resize; Set5 and Set14 by the published protocol)
and, with `--time`, times each route on one output frame as a user runs it: the input that makes the frame at
the factor, the model, the resize (interleaved, in this run; a ratio to the factor's own model). Before 0.2.0's
session 21 it timed each model on its own scale's input instead, which is not the route. A packaged model is
worth shipping when no route that is cheaper scores as well.

    python benchmarks/routes.py --data ../shared/data/val/Set5 --data ../shared/data/val/Set14 --factor 3 \
        --factor 4 --time 1280x720

Prints one markdown table per factor; `--json FILE` writes the rows. Time on an idle machine.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from upscale.bench import bench_models
from upscale.engine import Upscaler
from upscale.evaluation import evaluate, summary
from upscale.models import packaged_for_scale, packaged_models, load


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, action="append", required=True, help="HR benchmark folder (repeatable)")
    parser.add_argument("--factor", type=int, action="append", help="factor to reach (repeatable) [default: 2 3 4]")
    parser.add_argument("--model", action="append", help="models to route [default: every packaged model]")
    parser.add_argument("--time", metavar="WxH", help="also time each route on this output frame")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = args.model or list(packaged_models())
    upscalers = {name: Upscaler(load(name), device="cpu") for name in names}
    rows = []
    for factor in args.factor or [2, 3, 4]:
        native = [name for name, up in upscalers.items() if up.scale == factor]
        default = packaged_for_scale(factor) if native else None
        own = default if default in native else (native[0] if native else None)  # the factor's own model
        times = {}
        if args.time:
            width, height = (int(v) for v in args.time.lower().split("x"))
            ordered = {name: upscalers[name] for name in sorted(upscalers, key=lambda n: n != own)}
            timed, _ = bench_models(ordered, 0, 0, repeats=3, rounds=3, output=(width, height), factor=factor)
            times = {row.name: row.seconds * 1000 for row in timed}
        print(f"\n### to x{factor}\n")
        print(f"| route | {' | '.join(f'{d.name} PSNR' for d in args.data)} |"
              f"{' ms per ' + args.time + ' frame | vs own |' if times else ''}")
        print(f"|---|{'---|' * len(args.data)}{'---|---|' if times else ''}")
        for name, up in upscalers.items():
            means = summary(evaluate(up, list(args.data), factor=factor))
            route = name if up.scale == factor else f"{name} (x{up.scale}) and a resize"
            row = {"factor": factor, "model": name, "route": route, "own": name == own,
                   **{d.name: means[d.name]["psnr"] for d in args.data}}
            cells = " | ".join(f"{means[d.name]['psnr']:.2f}" for d in args.data)
            timing = ""
            if times:
                row["ms"] = times[name]
                timing = f" {times[name]:.1f} | {times[name] / times[own]:.2f}x |" if own else f" {times[name]:.1f} | - |"
            rows.append(row)
            print(f"| {'**' + route + '**' if row['own'] else route} | {cells} |{timing}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
