"""The network a comparison script trains (`recipe_ablation.py`, `data_scaling.py`): a model's genotype, or
the baseline of a scale. Here, not in `trinas.screen`, because packaged names belong to the application."""

from __future__ import annotations

import argparse

from trinas.space import Genotype, baseline_genotype


def add_network_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="a model folder or packaged name whose genotype is trained "
                                        "[default: the baseline of --scale at width 24]")
    parser.add_argument("--scale", type=int, default=2)


def model_folder(spec: str) -> str:
    """The folder of a model folder or packaged name, as a schedule names the weights it starts from: relative
    to the working folder where it lies below it (`weights/trinas-x2`), so a comparison's stamps and results do
    not name one machine's checkout and the same command resumes it from another."""
    from pathlib import Path

    from upscale.models import resolve

    folder = Path(resolve(spec)).resolve()
    try:
        return str(folder.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(folder)


def network_of(args: argparse.Namespace) -> Genotype:
    if args.model:
        from upscale.models import load

        return load(args.model).module.genotype
    return baseline_genotype(args.scale, width=24)
