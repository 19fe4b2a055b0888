"""`upscale bench`: throughput of the engine, each variant measured in the same run so ratios are fair.

Machines are noisy; a single number means little. Every row is timed in the same process, interleaved
over several rounds, and reported with its ratio to the first row (the baseline).
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np
import torch

from trinas.cost import madds_per_output_pixel

from .engine import Upscaler
from .errors import UpscaleError


@dataclass
class BenchRow:
    name: str
    seconds: float  # median seconds per image
    megapixels_per_s: float  # output megapixels per second
    ratio: float = 1.0  # baseline seconds / these seconds (> 1: faster than the baseline)
    gflops: float | None = None  # achieved: 2 x the model's multiply-adds per output pixel x pixels / seconds
    input: str | None = None  # WxH, where models of different scales ran on inputs of one output frame

    @property
    def fps(self) -> float:
        return 1.0 / self.seconds


@dataclass
class Reference:
    """What the device does beside the model, timed in the same run: the ceiling and the floor."""

    conv_width: int  # the model's trunk width
    conv_gflops: float  # a plain 3x3 conv at that width, on the model's input size, as the engine runs it
    bicubic_seconds: float  # OpenCV bicubic resize of the same image to the output size


def _timed(run: Callable[[], object], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        run()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def bench(upscaler: Upscaler, height: int, width: int, repeats: int = 5, rounds: int = 3,
          variants: dict[str, Callable[[Upscaler], None]] | None = None) -> tuple[list[BenchRow], Reference]:
    """Median time per image of each variant (a function that reconfigures the upscaler), interleaved, and the
    reference timings of the same run."""
    variants = variants or {"engine": lambda up: None}
    image = _test_image(height, width)
    runs = {name: (lambda c=configure: c(upscaler), lambda: upscaler.upscale_array(image))
            for name, configure in variants.items()}
    madds = {name: _madds(upscaler) for name in runs}
    return _with_references(runs, madds, upscaler, image, repeats, rounds)


def bench_models(upscalers: dict[str, Upscaler], height: int, width: int, repeats: int = 5,
                 rounds: int = 3, output: tuple[int, int] | None = None, factor: int | None = None
                 ) -> tuple[list[BenchRow], Reference]:
    """Median time per image of each model, interleaved (the first is the baseline), and the reference timings
    of the same run (at the first model's width and input). Every model gets the same height x width input,
    or, with `output` (width, height), the input that makes that output frame at its own scale (the side over
    the scale, rounded), so models of different scales are compared on the frame a user wants. With `factor`
    too, each row is the route to that factor a user would run (`--outscale`): the input that makes the frame
    at `factor`, the model, then the engine's resize to the frame, whatever the model's own scale."""
    if output is None:
        scales = {up.scale for up in upscalers.values()}
        if len(scales) != 1:
            raise UpscaleError(f"models to compare must share one scale, got x{', x'.join(map(str, sorted(scales)))}"
                               f" (or compare them on one output frame: --output WxH)")
        inputs = {name: (height, width) for name in upscalers}
    else:
        inputs = {name: (round(output[1] / (factor or up.scale)), round(output[0] / (factor or up.scale)))
                  for name, up in upscalers.items()}
    images = {name: _test_image(*inputs[name]) for name in upscalers}
    runs = {name: (lambda: None, lambda up=up, image=images[name]: up.upscale_array(image, factor))
            for name, up in upscalers.items()}
    madds = {name: _madds(up) for name, up in upscalers.items()}
    out_pixels = {name: h * w * (factor or upscalers[name].scale) ** 2 for name, (h, w) in inputs.items()}
    first = next(iter(upscalers))
    rows, reference = _with_references(runs, madds, upscalers[first], images[first], repeats, rounds, out_pixels)
    for row in rows:
        row.input = "{1}x{0}".format(*inputs[row.name])
        if factor and row.gflops:  # the model's multiply-adds are per pixel of its own output, not the route's
            row.gflops *= (upscalers[row.name].scale / factor) ** 2
    return rows, reference


def _madds(upscaler: Upscaler) -> float | None:
    genotype = getattr(upscaler.model, "genotype", None)
    return madds_per_output_pixel(genotype) if genotype is not None else None


REFERENCE_CONV = "3x3 conv (reference)"
REFERENCE_BICUBIC = "bicubic, OpenCV (reference)"


def _with_references(runs: dict, madds: dict[str, float | None], upscaler: Upscaler, image: np.ndarray,
                     repeats: int, rounds: int, out_pixels: dict[str, int] | None = None
                     ) -> tuple[list[BenchRow], Reference]:
    """Time the runs with the two references interleaved among them; the rows get their achieved GFLOP/s.
    `out_pixels`: each run's output pixels, where they differ from `upscaler`'s output of `image`."""
    height, width = image.shape[:2]
    scale = upscaler.scale
    out_pixels = {**{name: height * width * scale**2 for name in runs}, **(out_pixels or {})}
    conv_width = int(getattr(getattr(upscaler.model, "genotype", None), "width", 32))
    dtype = upscaler.storage_dtype
    conv = torch.nn.Conv2d(conv_width, conv_width, 3, padding=1).to(upscaler.device, dtype).eval()
    conv = conv.to(memory_format=upscaler.memory_format)
    features = torch.rand(1, conv_width, height, width, device=upscaler.device, dtype=dtype)
    features = features.contiguous(memory_format=upscaler.memory_format)

    def run_conv() -> None:  # in the model's precision, as the model runs
        with torch.inference_mode(), upscaler.computing():
            conv(features)

    references = {REFERENCE_CONV: (lambda: None, run_conv),
                  REFERENCE_BICUBIC: (lambda: None, lambda: cv2.resize(image, (width * scale, height * scale),
                                                                      interpolation=cv2.INTER_CUBIC))}
    megapixels = {name: out_pixels.get(name, height * width * scale**2) / 1e6 for name in {**runs, **references}}
    rows = _interleaved({**runs, **references}, megapixels, repeats, rounds)
    by_name = {row.name: row for row in rows}
    conv_row, bicubic_row = by_name[REFERENCE_CONV], by_name[REFERENCE_BICUBIC]
    reference = Reference(conv_width, 2 * 9 * conv_width**2 * height * width / conv_row.seconds / 1e9,
                          bicubic_row.seconds)
    model_rows = [row for row in rows if row.name in runs]
    for row in model_rows:
        if madds.get(row.name):
            row.gflops = 2 * madds[row.name] * out_pixels[row.name] / row.seconds / 1e9
    return model_rows, reference


def _test_image(height: int, width: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _interleaved(runs: dict[str, tuple[Callable[[], None], Callable[[], object]]],
                 out_megapixels: dict[str, float], repeats: int, rounds: int) -> list[BenchRow]:
    """Each run (prepare, timed call) in turn, `rounds` times, so drifts of the machine hit all alike."""
    for prepare, run in runs.values():  # warm-up: allocator, kernels, thread pool
        prepare()
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, (prepare, run) in runs.items():
            prepare()
            run()
            times[name] += _timed(run, repeats)
    rows = [BenchRow(name, float(np.median(t)), out_megapixels[name] / float(np.median(t)))
            for name, t in times.items()]
    for row in rows:
        row.ratio = rows[0].seconds / row.seconds
    return rows


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory of this process so far: GPU allocations on CUDA, resident set size otherwise."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
