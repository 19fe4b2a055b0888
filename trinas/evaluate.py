"""Run a model over benchmark images by the published protocol and report PSNR/SSIM on Y."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .data import list_images, load_rgb, to_tensor, to_uint8
from .imresize import imresize
from .metrics import crop_to_multiple, make_lr, psnr, ssim


@dataclass
class BenchmarkImage:
    name: str
    lr: np.ndarray
    hr: np.ndarray


@dataclass
class ImageScore:
    name: str
    psnr: float
    ssim: float
    bicubic_psnr: float
    bicubic_ssim: float
    seconds: float


@dataclass
class DatasetScore:
    name: str
    images: list[ImageScore] = field(default_factory=list)

    def mean(self, key: str) -> float:
        return float(np.mean([getattr(i, key) for i in self.images])) if self.images else float("nan")


def load_benchmark(folder: Path, scale: int) -> list[BenchmarkImage]:
    """HR cropped to a multiple of the scale and its bicubic LR, for every image in the folder."""
    images = []
    for path in list_images([folder]):
        hr = crop_to_multiple(load_rgb(path), scale)
        images.append(BenchmarkImage(path.stem, make_lr(hr, scale), hr))
    return images


def upscale_with(model: torch.nn.Module, device: torch.device | str = "cpu") -> Callable[[np.ndarray], np.ndarray]:
    """A plain whole-image upscaler for evaluation during training (no tiling)."""

    @torch.inference_mode()
    def run(lr: np.ndarray) -> np.ndarray:
        x = to_tensor(lr[None]).to(device)
        return to_uint8(model(x))[0]

    return run


def score(name: str, images: list[BenchmarkImage], scale: int,
          upscale: Callable[[np.ndarray], np.ndarray]) -> DatasetScore:
    """PSNR/SSIM of `upscale` and of bicubic on every image, `scale` border pixels cut."""
    result = DatasetScore(name)
    for image in images:
        start = time.perf_counter()
        sr = upscale(image.lr)
        seconds = time.perf_counter() - start
        bicubic = imresize(image.lr, scale=scale)
        result.images.append(ImageScore(
            image.name, psnr(sr, image.hr, scale), ssim(sr, image.hr, scale),
            psnr(bicubic, image.hr, scale), ssim(bicubic, image.hr, scale), seconds))
    return result
