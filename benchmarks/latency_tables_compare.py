"""Do two latency tables of one machine agree, and does their mean predict better than either?

Layer times move from one timing to the next more than networks do: two tables filled 50 minutes apart on
one idle Xeon differed per layer by -2% to +18% (10th to 90th percentile). This script reads tables (the
cache files `LatencyTable` writes) and the `--json` files of latency checks that used them, and for each
check fits the calibration to its stored calibration networks (`LatencyTable.calibrate`, the product's own
fit, nothing timed) with each table and with the tables' mean, then predicts the check's networks:

    python benchmarks/latency_tables_compare.py \
        --table benchmarks/results/latency-tables-xeon6-2026-12-03/earlier-table.json \
        --table benchmarks/results/latency-tables-xeon6-2026-12-03/later-table.json \
        --check benchmarks/results/latency-check-earlier-table-xeon6-2026-12-03-seed0.json ...

Every layer a check needs must be in every table (nothing is timed here).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from trinas.latency import Device, LatencyTable
from trinas.space import Genotype

MAX_TABLE_BYTES = 64 * 1024 * 1024  # a table or check file larger than this is not one of ours


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", type=Path, action="append", required=True, help="a latency table file")
    parser.add_argument("--check", type=Path, action="append", required=True,
                        help="a latency_check.py --json file (repeatable)")
    args = parser.parse_args(argv)
    tables = {path.stem: read_json(path)["entries"] for path in args.table}
    keys = set.intersection(*(set(entries) for entries in tables.values()))
    first, *others = tables
    for other in others:
        ratio = np.array([tables[other][k] / tables[first][k] for k in sorted(keys)])
        print(f"{other} / {first}, {len(keys)} layers: median {np.median(ratio):.3f}, 10th-90th percentile "
              f"{np.percentile(ratio, 10):.3f}-{np.percentile(ratio, 90):.3f}")
    variants = dict(tables)
    variants["mean of the tables"] = {k: float(np.mean([entries[k] for entries in tables.values()])) for k in keys}
    print(f"{'check':55s} {'table':28s} {'raw':>6s} {'calibrated':>10s} {'largest error':>13s}")
    for path in args.check:
        check = read_json(path)
        for name, entries in variants.items():
            raw, calibrated, largest = score(entries, check)
            print(f"{path.name:55s} {name:28s} {raw:6s} {calibrated:>10s} {largest:12.1%}")


def read_json(path: Path) -> dict:
    if not path.is_file() or path.stat().st_size > MAX_TABLE_BYTES:
        raise SystemExit(f"error: {path} is not a file of at most {MAX_TABLE_BYTES} bytes")
    return json.loads(path.read_text())


def score(entries: dict[str, float], check: dict) -> tuple[str, str, float]:
    """Within-10% shares of the raw sums and of the calibration fitted to the check's own calibration
    networks, and the calibrated largest error, with these layer times."""
    table = StoredTable(entries)

    def networks(kind: str) -> list[tuple[Genotype, list[tuple[int, int]], float]]:
        return [(Genotype.from_dict(e["spec"]), [tuple(t) for t in e["tiles"]], e["measured_ms"]) for e in check[kind]]

    fit = networks("fitted_on")
    table.calibrate([(g, tiles) for g, tiles, _ in fit], [ms for *_, ms in fit])
    ratios = np.array([(table.raw_frame_ms(g, tiles) / measured, table.frame_ms(g, tiles) / measured)
                       for g, tiles, measured in networks("checked")])
    within = np.sum(np.abs(ratios - 1) <= 0.10, axis=0)
    return f"{within[0]}/{len(ratios)}", f"{within[1]}/{len(ratios)}", float(np.abs(ratios[:, 1] - 1).max())


class StoredTable(LatencyTable):
    """A latency table of given layer times that times nothing: a layer it lacks is an error, not a timing."""

    def __init__(self, entries: dict[str, float]) -> None:
        super().__init__(Device("cpu", 2, False, "stored"), cache=Path(os.devnull))  # reads no file
        self.entries = dict(entries)

    def fill(self, layers) -> None:
        missing = [layer.key for layer in layers if layer.key not in self.entries]
        if missing:
            raise SystemExit(f"error: a table lacks {len(missing)} layers the check needs, e.g. {missing[0]}")


if __name__ == "__main__":
    main()
