"""Is a change faster? `upscale bench` in an earlier commit and in this work tree, run alternately.

The earlier commit is checked out into a temporary git worktree; each round runs `python -m upscale bench
... --json` there and here, one after the other (in a fresh process each, as a user starts it), so a
machine that slows down mid-run slows both alike. Reports each side's median time of one row of the bench
(`--row`, the engine's default layout unless named) and the ratio, with every round's figures.

    python benchmarks/checkouts_compare.py --base 88b5c30 --rounds 4 -- --model trinas-x4-rt --output 1280x720

Everything after `--` goes to `upscale bench` (which times its own interleaved rounds within each run).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bench_seconds(checkout: Path, bench_args: list[str], row: str) -> float:
    """Seconds per image of `row` from one `upscale bench --json` run with `checkout` first on the path."""
    command = [sys.executable, "-m", "upscale", "bench", *bench_args, "--json"]
    done = subprocess.run(command, cwd=checkout, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"upscale bench failed in {checkout}: {done.stderr.strip()[-500:]}")
    rows = {r["name"]: r for r in json.loads(done.stdout)["rows"]}
    if row not in rows:
        raise SystemExit(f"no row {row!r} in the bench output; rows: {', '.join(rows)}")
    return rows[row]["seconds"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the earlier commit (any git revision)")
    parser.add_argument("--repo", type=Path, default=ROOT, help="the work tree compared [default: this one]")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--row", default="channels-last", help="the bench row compared")
    parser.add_argument("bench_args", nargs=argparse.REMAINDER, help="-- then `upscale bench` options")
    args = parser.parse_args(argv)
    root = args.repo.resolve()
    bench_args = args.bench_args[1:] if args.bench_args[:1] == ["--"] else args.bench_args
    with tempfile.TemporaryDirectory(prefix="checkouts-compare-") as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "-C", str(root), "worktree", "add", "--detach", "--quiet", str(base), args.base],
                       check=True)
        try:
            times: dict[str, list[float]] = {args.base: [], "work tree": []}
            for index in range(args.rounds):
                for name, checkout in ((args.base, base), ("work tree", root)):
                    times[name].append(bench_seconds(checkout, bench_args, args.row) * 1e3)
                print(f"round {index + 1}: " + ", ".join(f"{name} {t[-1]:.1f} ms" for name, t in times.items()))
        finally:
            subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(base)], check=False)
    before, after = (statistics.median(t) for t in times.values())
    print(f"median: {args.base} {before:.1f} ms, work tree {after:.1f} ms; the work tree takes {after / before:.3f}x "
          f"(`upscale bench {' '.join(bench_args)}`, row {args.row})")


if __name__ == "__main__":
    main()
