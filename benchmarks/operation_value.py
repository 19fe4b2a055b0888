"""Does an operation pay on a CPU? Quality per millisecond of the baseline network built from each operation.

For each operation, the baseline genotype (cells of two ops at one width, upsampling at the end) is built
with that operation in place of conv3x3, trained from scratch under one identical schedule and seeds
(`trinas.screen`), scored on Set5 and Set14, and its folded network (as inference runs it) timed on one
output frame, every operation interleaved in the same run so the times compare. A kept operation raises
PSNR at equal time, or buys its extra time with more PSNR than a wider conv3x3 would.

    python benchmarks/operation_value.py --train ../shared/data/train --val ../shared/data/val/Set5 \
        --report ../shared/data/val/Set14 --out runs/op-value-x2 --ops conv3x3 rep3x3 spanatt3x3 --jobs 2

The table goes to OUT/operations.md and OUT/operations.json; a stopped run continues with the same command.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time

import torch

from trinas.net import TriNet, fold
from trinas.operations import op_kind
from trinas.screen import (DataSpec, Schedule, Task, add_screen_arguments, mean_and_spread, screen_all_or_exit,
                           seed_summary)
from trinas.space import Cell, Genotype, baseline_genotype


def genotype_with(op: str, scale: int, width: int, cells: int) -> Genotype:
    """The baseline genotype with `op` in every cell position (at the trunk width)."""
    base = baseline_genotype(scale, width, cells)
    path = tuple(Cell((op, op), (width, width)) if isinstance(s, Cell) else s for s in base.path)
    return Genotype(scale, width, path)


def frame_times(genotypes: dict[str, Genotype], size: tuple[int, int], threads: int, rounds: int = 5,
                repeats: int = 3) -> dict[str, float]:
    """Median seconds per output frame of `size` (width, height) of each folded network, interleaved."""
    torch.set_num_threads(threads)
    width, height = size
    scale = next(iter(genotypes.values())).scale
    x = torch.rand(1, 3, height // scale, width // scale)
    nets = {name: fold(TriNet(g)).eval() for name, g in genotypes.items()}
    times: dict[str, list[float]] = {name: [] for name in nets}
    with torch.inference_mode():
        for net in nets.values():
            net(x)  # warm-up
        for _ in range(rounds):
            for name, net in nets.items():
                for _ in range(repeats):
                    start = time.perf_counter()
                    net(x)
                    times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_screen_arguments(parser)
    parser.add_argument("--ops", nargs="+", default=["conv3x3", "rep3x3", "spanatt3x3"])
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--width", type=int, default=24)
    parser.add_argument("--cells", type=int, default=4)
    parser.add_argument("--time-threads", type=int, default=2, help="threads when timing a frame")
    parser.add_argument("--frame", default="1280x720", help="output frame size to time")
    args = parser.parse_args(argv)

    for op in args.ops:
        op_kind(op)  # unknown names fail here, not after the training
    genotypes = {op: genotype_with(op, args.scale, args.width, args.cells) for op in args.ops}
    tasks = [Task(g, seed, args.out / op / f"seed{seed}", {"op": op}) for seed in args.seeds
             for op, g in genotypes.items()]
    spec = DataSpec(tuple(args.train), args.val, args.report, args.scale, args.patch)
    results: dict[str, list[dict]] = {op: [] for op in args.ops}
    schedule = Schedule(args.steps, args.batch, args.patch, args.lr, precision=args.precision)
    for result in screen_all_or_exit(tasks, spec, schedule, args.jobs, args.threads, args.device):
        results[result["op"]].append(result)
        print(f"{result['op']} seed {result['seed']}: {args.val.name} {result['val']:.2f} dB, "
              f"{args.report.name} {result['report']:.2f} dB", flush=True)
    size = tuple(int(v) for v in args.frame.lower().split("x"))
    seconds = frame_times(genotypes, size, args.time_threads)
    first = args.ops[0]
    rows = []
    for op in args.ops:
        rows.append({"op": op, "genotype": genotypes[op].describe(), "ms": seconds[op] * 1e3,
                     "time_ratio": seconds[op] / seconds[first], **seed_summary(results[op])})
    summary = {"command": "python benchmarks/operation_value.py " + shlex.join(sys.argv[1:] if argv is None else argv),
               "frame": args.frame, "time_threads": args.time_threads, "seeds": args.seeds,
               "schedule": {"steps": args.steps, "batch": args.batch, "patch": args.patch, "lr": args.lr,
                            "precision": args.precision},
               "rows": rows}
    lines = [f"Each op in every cell of `{genotypes[first].describe()}`; {args.steps} steps, batch {args.batch}, "
             f"{args.patch}px LR patches, lr {args.lr}, {args.precision}, seeds {args.seeds}; a {args.frame} output "
             f"frame timed on {args.time_threads} threads, interleaved.", "",
             f"| op | {args.val.name} PSNR | {args.report.name} PSNR | ms / frame | time vs {first} |",
             "|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['op']} | {mean_and_spread(row, 'val')} | {mean_and_spread(row, 'report')} | "
                     f"{row['ms']:.0f} | {row['time_ratio']:.2f}x |")
    lines += ["", f"Command: `{summary['command']}`", ""]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "operations.json").write_text(json.dumps(summary, indent=1) + "\n")
    (args.out / "operations.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
