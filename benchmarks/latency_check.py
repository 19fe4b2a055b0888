"""Do layer times add up? Predicted against measured frame time, for the packaged models and random genotypes.

Each network is folded, cut into the engine's tiles for one output frame (`trinas.tiling.frame_tiles` with the
engine's CPU tile side and the model's receptive field as context), and timed whole over those tiles, every
network interleaved over several rounds (`trinas.latency.measure_frames`); the prediction is
`LatencyTable.frame_ms` over the same tiles, from the table the search uses (filled in as needed, kept in
the cache), raw (the sum of the layers' times alone) and calibrated. `--calibrate N` first fits the table's
calibration on N other random genotypes per scale (another seed, so the check is on networks it has not
seen) and saves it; without it the table's stored calibration, if any, is used. Repeat `--scale` to fit and
check several scales at once (one table serves them all); `--tail mixed` draws half the networks with a
shuffle tail.

    python benchmarks/latency_check.py --frame 1280x720 --scale 2 --scale 4 --tail mixed --random 20 \
        --calibrate 20 --threads 2

Prints one row per network (raw and calibrated prediction, measured ms, ratios) and the share within 10%,
and measures every network again in a fresh process: how far that moves a frame time is as closely as any
prediction can be checked (a second process moved one network by 14% on our CPU);
`--json FILE` writes the rows. `--refit FILE...` reads such files back and fits the calibration again to
their stored frame times, timing nothing but layers the table lacks: a new kind of fit is tried without the
minutes of whole-network timing, on exactly the networks it was checked on before.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from trinas.export import load_model
from trinas.latency import Device, LatencyTable, busy_warning, measure_frames, measure_frames_in_fresh_process
from trinas.net import receptive_radius
from trinas.search_config import SearchInputError, frame_size
from trinas.search_losses import LATENCY_TILE_PAD
from trinas.space import Genotype, SearchSpace, random_genotype
from trinas.tiling import engine_tile, frame_tiles
from upscale.models import packaged_models


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frame", default="1280x720", help="output frame, WIDTHxHEIGHT")
    parser.add_argument("--scale", type=int, action="append", help="scale to check (repeatable) [default: 2]")
    parser.add_argument("--random", type=int, default=20, help="random networks checked per scale")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tail", choices=["conv", "shuffle", "mixed"], default="conv",
                        help="layout of the random networks (mixed: every other one with a shuffle tail)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", choices=["cpu", "cpu-bf16"], default="cpu",
                        help="the CPU in fp32, or in bf16 as `--precision bf16` runs")
    parser.add_argument("--tile", type=int, help="tile side (0: whole frames) [default: the engine's on the CPU]")
    parser.add_argument("--genotype", action="append", default=[], metavar="JSON",
                        help="a genotype to check too, as JSON text or a file (repeatable)")
    parser.add_argument("--calibrate", type=int, default=0, metavar="N",
                        help="fit the calibration on N random genotypes per scale, of another seed, first")
    parser.add_argument("--cache", type=Path, help="latency table folder [default: the user cache]")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--refit", type=Path, nargs="+", metavar="JSON",
                        help="--json files of earlier checks: fit again on all their calibration networks")
    args = parser.parse_args(argv)
    args.scale = args.scale or [2]
    torch.set_num_threads(args.threads)
    if args.refit:
        return refit(args.refit, Device.current(args.device, args.threads), args.cache)
    try:
        out_w, out_h = frame_size(args.frame)
    except SearchInputError as exc:
        parser.error(str(exc))
    # The tile side each scale's input is cut at, as reported: --tile, else the engine's on the CPU.
    tile_of = {scale: engine_tile("cpu", out_h // scale, out_w // scale, args.tile) for scale in args.scale}

    device = Device.current(args.device, args.threads)
    table = LatencyTable(device, args.cache)
    if stale := table.verify():
        print(stale)
    busy = busy_warning(table.path)
    if busy:
        print(f"warning: {busy}")
    fitted_on: list[dict] = []
    if args.calibrate:
        other = np.random.default_rng(args.seed + 1000)
        networks = [(random_genotype(space_of(args, scale, i), other),  # the search's assumed context:
                     frame_tiles("cpu", out_h, out_w, scale, LATENCY_TILE_PAD, tile_of[scale]))
                    for scale in args.scale for i in range(args.calibrate)]
        fitted_ms = table.calibrate(networks)  # measured here
        fitted_on = [{"name": f"fit-x{g.scale}-{i:02d}", "spec": g.to_dict(), "tiles": tiles, "measured_ms": ms}
                     for i, ((g, tiles), ms) in enumerate(zip(networks, fitted_ms))]
    calibration = table.calibration
    # Each network over its own tiles (its receptive field as context); networks with the same tiles are
    # measured together, interleaved.
    rng = np.random.default_rng(args.seed)
    checked: dict[str, tuple[Genotype, tuple]] = {}
    for scale in args.scale:
        genotypes = {name: load_model(folder).genotype for name, folder in sorted(packaged_models().items())
                     if load_model(folder).scale == scale}
        for i in range(args.random):
            genotypes[f"random-x{scale}-{i:02d}"] = random_genotype(space_of(args, scale, i), rng)
        for i, text in enumerate(args.genotype):
            data = json.loads(Path(text).read_text() if Path(text).is_file() else text)
            if Genotype.from_dict(data).scale == scale:
                genotypes[f"given-{i:02d}"] = Genotype.from_dict(data)
        for name, g in genotypes.items():
            tiles = frame_tiles("cpu", out_h, out_w, scale, receptive_radius(g), tile_of[scale])
            checked[name] = (g, tuple(tiles))
    by_tiles: dict[tuple, dict] = {}
    for name, (g, tiles) in checked.items():
        by_tiles.setdefault(tiles, {})[name] = g
    measured: dict[str, float] = {}
    for tiles, group in by_tiles.items():
        measured.update(measure_frames(group, list(tiles), device))
    # How well does this machine repeat itself? The same networks in a fresh process.
    again = measure_frames_in_fresh_process([(group, list(tiles)) for tiles, group in by_tiles.items()], device)
    rows = [check_row(table, name, g, list(tiles), measured[name]) | {"measured_again_ms": again[name]}
            for name, (g, tiles) in checked.items()]
    table.save()
    how = (f"calibrated on {len(fitted_on)} other random networks" if fitted_on
           else "calibrated" if calibration else "not calibrated")
    print(f"{args.frame} output frame, {', '.join(f'x{s}' for s in args.scale)}, {args.threads} threads, "
          f"{device.precision}, tiles of {', '.join(str(tile_of[s]) for s in args.scale)} (0: whole; "
          f"{table.measured} layers timed now, table {table.path}; {how})")
    print_rows(rows)
    print_fit_check(table)
    print_repeat(rows)
    print_shares(rows)
    if args.json:
        # The calibration's own networks and their times too, so another fit can be tried without timing.
        args.json.write_text(json.dumps({"frame": args.frame, "scales": args.scale,
                                         "tile": [tile_of[s] for s in args.scale], "checked": rows,
                                         "fitted_on": fitted_on, "fit_check": table.fit_check}, indent=1) + "\n")


def space_of(args: argparse.Namespace, scale: int, i: int) -> SearchSpace:
    """The search space the i-th random network of a scale is drawn from."""
    shuffle = args.tail == "shuffle" or (args.tail == "mixed" and i % 2 == 1)
    return SearchSpace(scale, tail="shuffle" if shuffle else "conv")


def check_row(table: LatencyTable, name: str, genotype: Genotype, tiles: list, measured_ms: float) -> dict:
    """One network's raw and calibrated prediction against its measured frame time."""
    raw = table.raw_frame_ms(genotype, tiles)
    predicted = table.frame_ms(genotype, tiles)
    return {"name": name, "genotype": genotype.describe(), "spec": genotype.to_dict(), "tiles": tiles,
            "raw_ms": raw, "predicted_ms": predicted, "measured_ms": measured_ms,
            "raw_ratio": raw / measured_ms, "ratio": predicted / measured_ms}


def print_rows(rows: list[dict]) -> None:
    print(f"{'network':20s} {'raw':>7s} {'calib.':>7s} {'measured':>8s} {'raw/m':>6s} {'cal/m':>6s}  genotype")
    for row in rows:
        print(f"{row['name']:20s} {row['raw_ms']:7.1f} {row['predicted_ms']:7.1f} {row['measured_ms']:8.1f} "
              f"{row['raw_ratio']:6.3f} {row['ratio']:6.3f}  {row['genotype']}")


def print_repeat(rows: list[dict]) -> None:
    """How far a second measurement in a fresh process moved, and the calibrated share against the mean of
    both: a check against one process cannot be closer than a process's own spread."""
    repeat = sorted(abs(r["measured_again_ms"] / r["measured_ms"] - 1) for r in rows)
    print(f"measured again in a fresh process: the two differ by {repeat[len(repeat) // 2]:.1%} (median), "
          f"{repeat[-1]:.1%} (largest); a prediction cannot be checked more closely than that")
    mean = [abs(2 * r["predicted_ms"] / (r["measured_ms"] + r["measured_again_ms"]) - 1) for r in rows]
    print(f"calibrated against the mean of both processes: within 10% for {sum(e <= 0.10 for e in mean)} of "
          f"{len(rows)}; largest error {max(mean):.1%}")


def print_shares(rows: list[dict]) -> None:
    for key, label in (("raw_ratio", "raw"), ("ratio", "calibrated")):
        within = sum(abs(r[key] - 1) <= 0.10 for r in rows)
        print(f"{label}: within 10% for {within} of {len(rows)}; largest error "
              f"{max(abs(r[key] - 1) for r in rows):.1%}")


def refit(paths: list[Path], device: Device, cache: Path | None) -> None:
    """Fit the calibration again to earlier checks' stored frame times (all their calibration networks
    together) and print their checks anew. The table is not saved: a refit is a trial, and a check that
    measures is what keeps a calibration."""
    checks = [json.loads(path.read_text()) for path in paths]
    fit = [entry for data in checks for entry in data.get("fitted_on", [])]
    if not fit:
        raise SystemExit("error: no calibration networks in these files (they were written without --calibrate)")
    table = LatencyTable(device, cache)
    table.calibrate([(Genotype.from_dict(e["spec"]), [tuple(t) for t in e["tiles"]]) for e in fit],
                    [e["measured_ms"] for e in fit])
    print(f"refitted on the {len(fit)} stored calibration networks of {', '.join(map(str, paths))} "
          f"({table.measured} layers timed now, table {table.path})")
    rows = [check_row(table, r["name"], Genotype.from_dict(r["spec"]), [tuple(t) for t in r["tiles"]],
                      r["measured_ms"]) for data in checks for r in data["checked"]]
    print_rows(rows)
    print_fit_check(table)
    print_shares(rows)


def print_fit_check(table: LatencyTable) -> None:
    """How the calibration fitted now predicted its own networks, each from a fit to the others, and which
    prediction the table keeps (`LatencyTable.calibrate`)."""
    check = table.fit_check
    if check is None:
        return
    print(f"calibration networks, each predicted by a fit to the others: within 10% for {check['fitted_within']} "
          f"of {check['networks']}, mean error {check['fitted_error']:.1%} (the raw sums: {check['raw_within']}, "
          f"{check['raw_error']:.1%}); kept: {'the fit' if check['kept'] == 'fitted' else 'the raw sums'}")


if __name__ == "__main__":
    main()
