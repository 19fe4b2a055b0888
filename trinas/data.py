"""HR image folders -> aligned LR/HR training patches, with the protocol's bicubic and 8-way augmentation.

LR images are made once per HR image (MATLAB bicubic of the whole image, quantised to uint8 as the test
protocol does), then patches are cut from aligned positions, so training sees exactly the kind of input
the benchmarks give.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .imresize import imresize
from .metrics import crop_to_multiple, make_lr

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def list_images(folders: list[str | Path]) -> list[Path]:
    """Every image file below the given folders, recursively, in a stable order."""
    files: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"data folder not found: {folder}")
        files += sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    return files


def image_subset(paths: list[Path], fraction: float) -> list[Path]:
    """A share of the images, the same on every machine and nested (the quarter lies inside the half), for
    measuring what more data brings: the images ordered by a hash of their names, the first `fraction` of
    them, at least one, returned in their original order."""
    if not 0 < fraction <= 1:
        raise ValueError(f"a fraction of the images must be in (0, 1], not {fraction}")
    count = max(1, round(len(paths) * fraction))
    ranked = sorted(paths, key=lambda p: hashlib.sha256(p.name.encode()).hexdigest())
    kept = set(ranked[:count])
    return [p for p in paths if p in kept]


def load_rgb(path: Path, max_side: int | None = None) -> np.ndarray:
    """An image as uint8 RGB; photos larger than `max_side` are shrunk (bicubic), which also hides JPEG noise."""
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"))
    if max_side and max(rgb.shape[:2]) > max_side:
        rgb = imresize(rgb, scale=max_side / max(rgb.shape[:2]))
    return rgb


@dataclass
class Pair:
    lr: np.ndarray  # uint8 HxWx3
    hr: np.ndarray  # uint8 (H*s)x(W*s)x3
    target: np.ndarray | None = None  # a teacher's output for `lr`, like `hr` (`trinas.distill`)


def make_pairs(files: list[Path], scale: int, min_lr_side: int, max_side: int | None = 2048) -> list[Pair]:
    """LR/HR pairs for every file big enough to give a `min_lr_side` LR patch."""
    pairs = []
    for path in files:
        hr = crop_to_multiple(load_rgb(path, max_side), scale)
        if min(hr.shape[:2]) < min_lr_side * scale:
            continue
        pairs.append(Pair(make_lr(hr, scale), hr))
    return pairs


def augment(*images: np.ndarray, code: int) -> tuple[np.ndarray, ...]:
    """One of the 8 flips/rotations of the square, applied to every image alike."""
    if code & 1:
        images = tuple(im[:, ::-1] for im in images)
    if code & 2:
        images = tuple(im[::-1] for im in images)
    if code & 4:
        images = tuple(im.transpose(1, 0, 2) for im in images)
    return images


class PatchSampler:
    """Random aligned patch batches. A batch depends only on (seed, step): resuming needs no RNG state."""

    def __init__(self, pairs: list[Pair], scale: int, patch: int, seed: int = 0) -> None:
        if not pairs:
            raise ValueError(f"no training image is large enough for {patch}px LR patches at x{scale}")
        self.pairs, self.scale, self.patch, self.seed = pairs, scale, patch, seed
        # Larger images hold more distinct patches: sample them proportionally to sqrt(area).
        areas = np.array([p.lr.shape[0] * p.lr.shape[1] for p in pairs], dtype=np.float64)
        self.weights = np.sqrt(areas) / np.sqrt(areas).sum()

    def batch(self, step: int, size: int, patch: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """`size` patch pairs of LR side `patch` (default: the sampler's; every image must hold it)."""
        lr, hr = self._patches(step, size, patch, targets=False)
        return lr, hr

    def batch_with_targets(self, step: int, size: int, patch: int | None = None
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`batch`'s LR and HR patches (the same ones) and the teacher's output at the HR patches' places."""
        if any(pair.target is None for pair in self.pairs):
            raise ValueError("these training pairs carry no teacher outputs (trinas.distill.teach)")
        lr, hr, target = self._patches(step, size, patch, targets=True)
        return lr, hr, target

    def _patches(self, step: int, size: int, patch: int | None, targets: bool) -> list[torch.Tensor]:
        rng = np.random.default_rng([self.seed, step])
        stacks: list[list[np.ndarray]] = [[], [], []] if targets else [[], []]
        for index in rng.choice(len(self.pairs), size=size, p=self.weights):
            pair, s, p = self.pairs[index], self.scale, patch or self.patch
            y = int(rng.integers(0, pair.lr.shape[0] - p + 1))
            x = int(rng.integers(0, pair.lr.shape[1] - p + 1))
            images = [pair.lr[y : y + p, x : x + p], pair.hr[y * s : (y + p) * s, x * s : (x + p) * s]]
            if targets:
                images.append(pair.target[y * s : (y + p) * s, x * s : (x + p) * s])
            for stack, image in zip(stacks, augment(*images, code=int(rng.integers(0, 8)))):
                stack.append(np.ascontiguousarray(image))
        return [to_tensor(np.stack(stack)) for stack in stacks]


def to_tensor(batch: np.ndarray) -> torch.Tensor:
    """uint8 NxHxWxC -> float NxCxHxW in [0, 1]."""
    return torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0)


def to_uint8(batch: torch.Tensor) -> np.ndarray:
    """float NxCxHxW in [0, 1] -> uint8 NxHxWxC, rounded as a saved image would be."""
    return batch.clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
