"""`upscale eval`: score a model on benchmark folders by the published protocol, bicubic beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from trinas.evaluate import DatasetScore, load_benchmark, score

from .engine import Upscaler
from .errors import UpscaleError


def evaluate(upscaler: Upscaler, folders: list[Path], on_image: Callable[[str], None] | None = None,
             factor: int | None = None) -> list[DatasetScore]:
    """One DatasetScore per folder (named after it), every image run through the engine as a user's would be.
    `factor` scores the route to another integer factor (LR made at that factor, the model, then the engine's
    resize, as `--outscale` runs it): how `--scale 2 --outscale 4` compares with a x4 model."""
    factor = factor or upscaler.scale
    results = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise UpscaleError(f"{folder}: no such data folder")
        images = load_benchmark(folder, factor)
        if not images:
            raise UpscaleError(f"{folder}: no images in this folder")

        def run(lr):
            if on_image:
                on_image(folder.name)
            return upscaler.upscale_array(lr, outscale=factor if factor != upscaler.scale else None)

        results.append(score(folder.name, images, factor, run))
    return results


def summary(scores: list[DatasetScore]) -> dict:
    """Mean figures per data set: what config.json records and `--json` prints."""
    return {s.name: {"psnr": round(s.mean("psnr"), 4), "ssim": round(s.mean("ssim"), 5),
                     "bicubic_psnr": round(s.mean("bicubic_psnr"), 4), "bicubic_ssim": round(s.mean("bicubic_ssim"), 5),
                     "seconds_per_image": round(s.mean("seconds"), 4), "images": len(s.images)} for s in scores}
