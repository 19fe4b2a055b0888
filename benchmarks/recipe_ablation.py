"""Which parts of the training recipe pay? One network trained from scratch (or on from a model's weights,
`--init`) under each recipe variant, with identical steps, batch, patches, learning rate, data and seeds
(`trinas.screen`), scored on Set5 (where a choice may be made) and Set14 (reported only).

Variants: `plain` (L1, one patch size, no average), `ema` (a weight average, decay --ema), `late-l2` and
`late-charbonnier` (the last --late-from of the run with that loss), `late-patch` (larger patches late),
`all` (every part), and `bf16` (the forward pass in bfloat16 autocast: not a part of the recipe but a trade,
kept where it loses no more than the seeds' spread at equal steps, for the steps per hour it buys; each row
says its training minutes, comparable within one run of this script; with `--precision bf16` every arm runs
in bf16 and there is no such arm), and with `--teacher MODEL`
`distill` (--distill of the loss towards MODEL's self-ensemble, `trinas.distill`). A part is kept in the
default recipe only where it beats `plain` on Set5 by more than the seeds' spread.

Does a saturated model gain from its own self-ensemble? Both arms train on from its weights:

    python benchmarks/recipe_ablation.py ... --model trinas-x2 --init trinas-x2 --teacher trinas-x2 \
        --variants plain distill --steps 8000 --lr 2e-4 --patch 48 --precision bf16 --jobs 2

    python benchmarks/recipe_ablation.py --train ../shared/data/train --val ../shared/data/val/Set5 \
        --report ../shared/data/val/Set14 --out runs/recipe-x2 --model trinas-x2-searched --steps 8000 --jobs 2

The table goes to OUT/recipe.md and OUT/recipe.json; a stopped run continues with the same command.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import asdict, replace
from pathlib import Path

from trinas.screen import (DataSpec, Schedule, Task, add_screen_arguments, mean_and_spread, screen_all_or_exit,
                           seed_summary)
from screened_network import add_network_arguments, model_folder, network_of


def variants(schedule: Schedule, ema: float, late_patch: int, teacher: str | None = None,
             distill: float = 0.5) -> dict[str, Schedule]:
    return {"plain": schedule,
            "ema": replace(schedule, ema=ema),
            "late-l2": replace(schedule, late_loss="l2"),
            "late-charbonnier": replace(schedule, late_loss="charbonnier"),
            "late-patch": replace(schedule, late_patch=late_patch),
            "all": replace(schedule, ema=ema, late_loss="l2", late_patch=late_patch),
            **({"bf16": replace(schedule, precision="bf16")} if schedule.precision == "fp32" else {}),
            **({"distill": replace(schedule, distill=distill, teacher=teacher)} if teacher else {})}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_screen_arguments(parser, steps=8000)
    add_network_arguments(parser)
    parser.add_argument("--variants", nargs="+", help="a subset of the variants [default: all of them]")
    parser.add_argument("--ema", type=float, default=0.999)
    parser.add_argument("--late-from", type=float, default=0.8)
    parser.add_argument("--late-patch", type=int, default=48)
    parser.add_argument("--init", metavar="MODEL",
                        help="every arm trains on from this model's weights (of --model's network), not from scratch")
    parser.add_argument("--teacher", metavar="MODEL",
                        help="adds the `distill` arm: this model's self-ensemble as a second target")
    parser.add_argument("--distill", type=float, default=0.5, help="the teacher's share of the loss in `distill`")
    args = parser.parse_args(argv)

    genotype = network_of(args)
    init = model_folder(args.init) if args.init else None
    base = Schedule(args.steps, args.batch, args.patch, args.lr, late_from=args.late_from, precision=args.precision,
                    init=init)
    schedules = variants(base, args.ema, args.late_patch, model_folder(args.teacher) if args.teacher else None,
                         args.distill)
    chosen = args.variants or list(schedules)
    unknown = sorted(set(chosen) - set(schedules))
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {', '.join(schedules)}")
    results: dict[str, list[dict]] = {name: [] for name in chosen}
    for name in chosen:
        schedule = schedules[name]
        tasks = [Task(genotype, seed, args.out / name / f"seed{seed}", {"variant": name}) for seed in args.seeds]
        spec = DataSpec(tuple(args.train), args.val, args.report, genotype.scale, schedule.largest_patch)
        for result in screen_all_or_exit(tasks, spec, schedule, args.jobs, args.threads, args.device):
            results[name].append(result)
            print(f"{name} seed {result['seed']}: {args.val.name} {result['val']:.2f} dB, "
                  f"{args.report.name} {result['report']:.2f} dB", flush=True)
    rows = []
    for name in chosen:
        minutes = sum(r["train_seconds"] for r in results[name]) / 60 / max(1, len(results[name]))
        rows.append({"variant": name, "schedule": asdict(schedules[name]), "minutes": minutes,
                     **seed_summary(results[name])})
    command = "python benchmarks/recipe_ablation.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    origin = f"from {args.init}'s weights" if args.init else "from scratch"
    teacher = f"; distill = {args.distill:g} of the loss towards {args.teacher}'s self-ensemble" if args.teacher else ""
    lines = [f"`{genotype.describe()}` {origin}; {args.steps} steps, batch {args.batch}, {args.patch}px LR "
             f"patches, lr {args.lr}, {args.precision}, seeds {args.seeds}; late = the last "
             f"{1 - args.late_from:.0%} of the steps{teacher}. Training minutes count from a run's last "
             "(re)start.", "",
             f"| variant | {args.val.name} PSNR | {args.report.name} PSNR | vs plain ({args.val.name}) | "
             f"training minutes |", "|---|---|---|---|---|"]
    plain = next((r for r in rows if r["variant"] == "plain"), None)
    if init:  # where every arm started: what training on gained or lost
        before = start_scores(init, args, genotype.scale)
        gain = f"{before['val'] - plain['val_mean']:+.3f} dB" if plain else ""
        lines.append(f"| {args.init}, before | {before['val']:.2f} | {before['report']:.2f} | {gain} | 0 |")
    for row in rows:
        gain = f"{row['val_mean'] - plain['val_mean']:+.3f} dB" if plain else ""
        lines.append(f"| {row['variant']} | {mean_and_spread(row, 'val')} | {mean_and_spread(row, 'report')} | "
                     f"{gain} | {row['minutes']:.1f} |")
    lines += ["", f"Command: `{command}`", ""]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "recipe.json").write_text(json.dumps({"command": command, "genotype": genotype.to_dict(),
                                                      "seeds": args.seeds, "rows": rows}, indent=1) + "\n")
    (args.out / "recipe.md").write_text("\n".join(lines))
    print("\n".join(lines))


def start_scores(folder: str, args: argparse.Namespace, scale: int) -> dict[str, float]:
    """The starting model's own PSNR on both sets, scored as the arms are."""
    from trinas.evaluate import load_benchmark, score, upscale_with
    from trinas.export import load_model

    model = load_model(Path(folder)).eval()
    return {key: score(key, load_benchmark(getattr(args, key), scale), scale, upscale_with(model)).mean("psnr")
            for key in ("val", "report")}


if __name__ == "__main__":
    main()
