"""Do layer times add up? Predicted against measured frame time, for the packaged models and random genotypes.

Each network is folded, cut into the engine's tiles for one output frame (`upscale.tiling.plan_tiles` with the
engine's CPU tile side and the model's receptive field as context), and timed over those tiles, every
network interleaved over several rounds; the prediction is `trinas.latency.LatencyTable.frame_ms` over the
same tiles. The table is the one the search uses (filled in as needed, kept in the cache).

    python benchmarks/latency_check.py --frame 1280x720 --scale 2 --random 20 --threads 2

Prints one row per network (predicted ms, measured ms, their ratio) and the share within 10%; `--json FILE`
writes the rows.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from trinas.export import load_model
from trinas.latency import Device, LatencyTable
from trinas.net import TriNet, fold
from trinas.space import SearchSpace, random_genotype
from upscale.models import packaged_models
from trinas.tiling import CPU_TILE, tile_shapes


def measure(nets: dict[str, tuple[torch.nn.Module, list[tuple[int, int]]]], rounds: int = 5) -> dict[str, float]:
    """Median milliseconds per frame (all its tiles) of each network, interleaved over rounds."""
    inputs = {name: [torch.rand(1, 3, h, w).contiguous(memory_format=torch.channels_last) for h, w in tiles]
              for name, (_, tiles) in nets.items()}
    times: dict[str, list[float]] = {name: [] for name in nets}
    with torch.inference_mode():
        for name, (net, _) in nets.items():
            net(inputs[name][0])  # warm-up
        for _ in range(rounds):
            for name, (net, _) in nets.items():
                start = time.perf_counter()
                for x in inputs[name]:
                    net(x)
                times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frame", default="1280x720", help="output frame, WIDTHxHEIGHT")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--random", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tile", type=int, default=CPU_TILE, help="engine tile side (0: whole frames)")
    parser.add_argument("--cache", type=Path, help="latency table folder [default: the user cache]")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out_w, out_h = (int(v) for v in args.frame.lower().split("x"))
    height, width = out_h // args.scale, out_w // args.scale

    genotypes = {name: load_model(folder).genotype for name, folder in sorted(packaged_models().items())
                 if load_model(folder).scale == args.scale}
    rng = np.random.default_rng(args.seed)
    for i in range(args.random):
        genotypes[f"random-{i:02d}"] = random_genotype(SearchSpace(args.scale), rng)
    table = LatencyTable(Device.current("cpu", args.threads), args.cache)
    nets = {name: (fold(TriNet(g)).eval().to(memory_format=torch.channels_last),
                   tile_shapes(height, width, args.tile, TriNet(g).receptive_field))
            for name, g in genotypes.items()}
    measured = measure(nets)
    rows = []
    for name, g in genotypes.items():
        predicted = table.frame_ms(g, nets[name][1])
        rows.append({"name": name, "genotype": g.describe(), "predicted_ms": predicted,
                     "measured_ms": measured[name], "ratio": predicted / measured[name]})
    table.save()
    print(f"{args.frame} output frame, x{args.scale}, {args.threads} threads, tiles of {args.tile} "
          f"({table.measured} layers timed now, table {table.path})")
    print(f"{'network':12s} {'predicted':>10s} {'measured':>10s} {'ratio':>6s}  genotype")
    for row in rows:
        print(f"{row['name']:12s} {row['predicted_ms']:10.1f} {row['measured_ms']:10.1f} {row['ratio']:6.3f}  "
              f"{row['genotype']}")
    within = sum(abs(r["ratio"] - 1) <= 0.10 for r in rows)
    print(f"within 10%: {within} of {len(rows)}; largest error {max(abs(r['ratio'] - 1) for r in rows):.1%}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
