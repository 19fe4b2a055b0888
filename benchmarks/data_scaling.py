"""What would more training data bring? One network trained from scratch on nested shares of the training
images (`trinas.data.image_subset`: the quarter lies inside the half), with identical steps, batch, patches,
learning rate and seeds (`trinas.screen`), scored on Set5 and Set14.

The slope of PSNR over log2(images), least squares over the shares' means, is the measured gain per doubling
of the data; the published anchors train on DIV2K (800 images of about 2K, several times our ~400 smaller
ones), so it says roughly what the missing data is worth, not more: an extrapolation, labelled as one.

    python benchmarks/data_scaling.py --train ../shared/data/train --val ../shared/data/val/Set5 \
        --report ../shared/data/val/Set14 --out runs/data-x2 --model trinas-x2 --steps 8000 --jobs 2

The table goes to OUT/data.md and OUT/data.json; a stopped run continues with the same command.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys

import numpy as np

from trinas.data import image_subset, list_images
from trinas.screen import (DataSpec, Schedule, Task, add_screen_arguments, mean_and_spread, screen_all_or_exit,
                           seed_summary)
from screened_network import add_network_arguments, network_of


def gain_per_doubling(images: list[int], means: list[float]) -> float | None:
    """dB per doubling of the images: the least-squares slope of PSNR over log2(images); None with one share."""
    if len(set(images)) < 2:
        return None
    return float(np.polyfit(np.log2(images), means, 1)[0])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_screen_arguments(parser, steps=8000)
    add_network_arguments(parser)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.25, 0.5, 1.0],
                        help="shares of the training images, each in (0, 1]")
    args = parser.parse_args(argv)
    if not all(0 < f <= 1 for f in args.fractions):
        parser.error("every --fractions value must be in (0, 1]")

    genotype = network_of(args)
    schedule = Schedule(args.steps, args.batch, args.patch, args.lr, precision=args.precision)
    every_image = list_images(args.train)
    rows = []
    for fraction in sorted(set(args.fractions)):
        name = f"data-{fraction:g}"
        images = len(image_subset(every_image, fraction))
        tasks = [Task(genotype, seed, args.out / name / f"seed{seed}", {"fraction": fraction, "images": images})
                 for seed in args.seeds]
        spec = DataSpec(tuple(args.train), args.val, args.report, genotype.scale, schedule.largest_patch,
                        fraction=fraction)
        results = []
        for result in screen_all_or_exit(tasks, spec, schedule, args.jobs, args.threads, args.device):
            results.append(result)
            print(f"{images} images seed {result['seed']}: {args.val.name} {result['val']:.2f} dB, "
                  f"{args.report.name} {result['report']:.2f} dB", flush=True)
        rows.append({"fraction": fraction, "images": images, **seed_summary(results)})

    slopes = {key: gain_per_doubling([r["images"] for r in rows], [r[f"{key}_mean"] for r in rows])
              for key in ("val", "report")}
    command = "python benchmarks/data_scaling.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    lines = [f"`{genotype.describe()}` from scratch on shares of the {len(every_image)} training images; {args.steps} "
             f"steps, batch {args.batch}, {args.patch}px LR patches, lr {args.lr}, {args.precision}, seeds "
             f"{args.seeds}.", "",
             f"| share | images | {args.val.name} PSNR | {args.report.name} PSNR |", "|---|---|---|---|"]
    lines += [f"| {r['fraction']:g} | {r['images']} | {mean_and_spread(r, 'val')} | {mean_and_spread(r, 'report')} |"
              for r in rows]
    if slopes["val"] is not None:
        lines += ["", f"Gain per doubling of the images (least squares over the shares' means): "
                      f"{slopes['val']:+.3f} dB on {args.val.name}, {slopes['report']:+.3f} dB on {args.report.name}. "
                      "An extrapolation past the largest share assumes the trend holds."]
    lines += ["", f"Command: `{command}`", ""]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "data.json").write_text(json.dumps({"command": command, "genotype": genotype.to_dict(),
                                                    "seeds": args.seeds, "rows": rows,
                                                    "gain_per_doubling_db": slopes}, indent=1) + "\n")
    (args.out / "data.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
