"""Does keeping freed memory (`trinas.allocator`), or huge pages on top, make the engine faster? Whole frames,
every way, interleaved.

The allocator is set once per process, so each measurement is a fresh process: the engine with glibc's
defaults (`TRINAS_MALLOC=default`) and with the memory kept, alternating over `--rounds` rounds so that
both see the same machine. Each process upscales one frame several times after a warm-up and reports its
fastest; the table gives each setting's median over rounds and the ratio.

    python benchmarks/allocator_compare.py --model trinas-x2 --model trinas-x4 --frame 1280x720 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

# Transparent huge pages for PyTorch's large CPU tensors (`THP_MEM_ALLOC_ENABLE`, read by PyTorch at its first
# allocation, so only a fresh process can try it): fewer TLB misses on activations of tens of megabytes.
SETTINGS = {"default": {"TRINAS_MALLOC": "default", "THP_MEM_ALLOC_ENABLE": "0"},
            "kept": {"TRINAS_MALLOC": "kept", "THP_MEM_ALLOC_ENABLE": "0"},
            "kept+thp": {"TRINAS_MALLOC": "kept", "THP_MEM_ALLOC_ENABLE": "1"}}


def child(model: str, frame: str, threads: int, repeats: int) -> None:
    """One process, one setting: the fastest of `repeats` frames, in ms, as JSON on stdout."""
    import numpy as np

    from trinas.allocator import allocator_name
    from upscale.engine import Upscaler
    from upscale.models import load

    upscaler = Upscaler(load(model), device="cpu", tile=256, threads=threads)
    out_w, out_h = (int(v) for v in frame.lower().split("x"))
    pixels = np.random.default_rng(0).integers(0, 256, (out_h // upscaler.scale, out_w // upscaler.scale, 3),
                                               dtype=np.uint8)
    upscaler.upscale_array(pixels)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        upscaler.upscale_array(pixels)
        times.append((time.perf_counter() - start) * 1e3)
    print(json.dumps({"ms": min(times), "allocator": allocator_name()}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=[], help="model name or folder (repeatable)")
    parser.add_argument("--frame", default="1280x720", help="output frame, WIDTHxHEIGHT")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5, help="frames per process")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.frame, args.threads, args.repeats)
        return
    models = args.model or ["trinas-x2"]
    times: dict[tuple[str, str], list[float]] = {(m, s): [] for m in models for s in SETTINGS}
    for _ in range(args.rounds):
        for model in models:
            for setting, env in SETTINGS.items():
                command = [sys.executable, __file__, "--child", model, "--frame", args.frame,
                           "--threads", str(args.threads), "--repeats", str(args.repeats)]
                done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True,
                                      check=True)
                result = json.loads(done.stdout.strip().splitlines()[-1])
                times[model, setting].append(result["ms"])
    print(f"{args.frame} output frame, {args.threads} threads, tiles of 256; median over {args.rounds} "
          f"interleaved rounds of each process's fastest of {args.repeats} frames")
    print(f"{'model':24s} " + " ".join(f"{s + ' ms':>13s}" for s in SETTINGS) + "  speed-up over default")
    for model in models:
        medians = {s: statistics.median(times[model, s]) for s in SETTINGS}
        ratios = ", ".join(f"{s} {medians['default'] / medians[s]:.2f}x" for s in SETTINGS if s != "default")
        print(f"{model:24s} " + " ".join(f"{medians[s]:13.1f}" for s in SETTINGS) + f"  {ratios}")


if __name__ == "__main__":
    main()
