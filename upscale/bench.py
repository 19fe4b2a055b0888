"""`upscale bench`: throughput of the engine, each variant measured in the same run so ratios are fair.

Machines are noisy; a single number means little. Every row is timed in the same process, interleaved
over several rounds, and reported with its ratio to the first row (the baseline).
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .engine import Upscaler


@dataclass
class BenchRow:
    name: str
    seconds: float  # median seconds per image
    megapixels_per_s: float  # output megapixels per second
    ratio: float = 1.0  # baseline seconds / these seconds (> 1: faster than the baseline)


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
          variants: dict[str, Callable[[Upscaler], None]] | None = None) -> list[BenchRow]:
    """Median time per image of each variant (a function that reconfigures the upscaler), interleaved."""
    variants = variants or {"engine": lambda up: None}
    image = _test_image(height, width)
    runs = {name: (lambda c=configure: c(upscaler), lambda: upscaler.upscale_array(image))
            for name, configure in variants.items()}
    return _interleaved(runs, height * width * upscaler.scale**2 / 1e6, repeats, rounds)


def bench_models(upscalers: dict[str, Upscaler], height: int, width: int, repeats: int = 5,
                 rounds: int = 3) -> list[BenchRow]:
    """Median time per image of each model on the same image, interleaved: the first is the baseline."""
    scales = {up.scale for up in upscalers.values()}
    if len(scales) != 1:
        raise ValueError(f"models to compare must share one scale, got x{', x'.join(map(str, sorted(scales)))}")
    image = _test_image(height, width)
    runs = {name: (lambda: None, lambda up=up: up.upscale_array(image)) for name, up in upscalers.items()}
    return _interleaved(runs, height * width * scales.pop() ** 2 / 1e6, repeats, rounds)


def _test_image(height: int, width: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _interleaved(runs: dict[str, tuple[Callable[[], None], Callable[[], object]]], out_megapixels: float,
                 repeats: int, rounds: int) -> list[BenchRow]:
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
    rows = [BenchRow(name, float(np.median(t)), out_megapixels / float(np.median(t))) for name, t in times.items()]
    for row in rows:
        row.ratio = rows[0].seconds / row.seconds
    return rows


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory of this process so far: GPU allocations on CUDA, resident set size otherwise."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
