"""Command-line options shared by every command that runs a model, and the Upscaler they describe."""

from __future__ import annotations

import functools
from typing import Callable

import click

from .engine import Upscaler
from .errors import UpscaleError
from .models import load, packaged_for_factor, packaged_for_scale


def parse_tile(value: str) -> int | str:
    if value == "auto":
        return "auto"
    try:
        tile = int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a number of pixels, 0 or 'auto'") from None
    if tile < 0 or 0 < tile < 16:
        raise click.BadParameter("a tile is 0 (whole image), 'auto', or at least 16 pixels")
    return tile


def engine_options(command: Callable) -> Callable:
    """--model/--scale/--device/--precision/--tile/--tile-pad/--compile, in one place for every command."""
    options = [
        click.option("--model", "-m", "model_spec", metavar="SPEC",
                     help="Packaged name (trinas-x2), model folder, or hf:owner/repo[@revision]."),
        click.option("--scale", "-s", type=click.IntRange(2, 8), help="Use the packaged model for this factor."),
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps."),
        click.option("--precision", default="auto", show_default=True,
                     type=click.Choice(["auto", "fp32", "fp16", "bf16"]),
                     help="auto: fp16 on a GPU, fp32 on the CPU; bf16 also on the CPU (fast with AMX: measure)."),
        click.option("--tile", default="auto", show_default=True, metavar="N|auto|0",
                     callback=lambda ctx, param, value: parse_tile(value),
                     help="Tile side in input pixels; 0 = whole image; auto = from free memory (on the CPU at "
                          "most 256, and whole images no larger than one tile)."),
        click.option("--tile-pad", type=click.IntRange(0), metavar="N",
                     help="Context around each tile [default: the model's receptive field, seamless]."),
        click.option("--compile", "compiled", is_flag=True,
                     help="torch.compile the model (tens of seconds to start; measure with `upscale bench "
                          "--compile` first: slower than eager on our CPU)."),
    ]
    return functools.reduce(lambda f, option: option(f), reversed(options), command)


def build_upscaler(model_spec: str | None, scale: int | None, device: str, precision: str,
                   tile: int | str, tile_pad: int | None, compiled: bool = False, default_scale: int = 2,
                   outscale: float | None = None, tta: bool = False) -> Upscaler:
    """The Upscaler for the options; --scale that contradicts --model is an error, never a silent choice.

    With neither --model nor --scale, an --outscale factor picks the packaged model for it
    (`packaged_for_factor`: x3 for 3, x4 for 4 and for 8 with a resize after)."""
    if model_spec is None and scale is None and outscale is not None:
        scale = packaged_for_factor(outscale)
    spec = model_spec or packaged_for_scale(scale or default_scale)
    model = load(spec)
    if scale is not None and model.scale != scale:
        raise UpscaleError(f"model {spec} upscales by {model.scale}; --scale {scale} needs a x{scale} model "
                           f"(see `upscale models list`) or --outscale {scale}")
    return Upscaler(model, device=device, precision=precision, tile=tile, tile_pad=tile_pad, tta=tta,
                    compiled=compiled)


TTA_OPTION = click.option("--tta", is_flag=True,
                          help="Self-ensemble: average over the 8 flips and rotations (8x the time, a little more PSNR).")
