"""A search's input: checks that fail in a second instead of after hours, and the data it trains on.

Training images are split into images for weight steps and held-out images for architecture steps (an even
spread over the list); LR inputs are made by MATLAB-style bicubic, like every benchmark.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from .cost import count_params
from .data import IMAGE_SUFFIXES, Pair, PatchSampler, list_images, load_rgb
from .evaluate import BenchmarkImage
from .metrics import crop_to_multiple, make_lr
from .search_config import CHECKPOINT, SearchConfig, SearchInputError
from .search_losses import budgets_of
from .space import SearchSpace
from .supernet import Architecture, SuperNet


@dataclass
class SearchData:
    train: PatchSampler  # weight steps
    arch: PatchSampler  # architecture steps: held-out training images
    val: dict[str, list[BenchmarkImage]]
    images: int
    skipped: list[str]
    patches_per_epoch: float


def check_inputs(config: SearchConfig, train_dirs: list[Path], val_dirs: list[Path], out: Path,
                 resume: bool) -> None:
    """Everything that can be checked in a second, before data preparation and hours of search."""
    for folder in [*train_dirs, *val_dirs]:
        folder = Path(folder)
        if not folder.is_dir():
            raise SearchInputError(f"data folder not found: {folder}")
        if not any(p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() for p in folder.rglob("*")):
            raise SearchInputError(f"no images in {folder} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    if not train_dirs or not val_dirs:
        raise SearchInputError("a search needs at least one training folder and one validation folder")
    budgets_of(config, log=lambda line: None, quick=True)  # each budget at least its cheapest network
    if config.batch < 1 or config.patch < 4:
        raise SearchInputError("batch must be at least 1 and patch at least 4 pixels")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SearchInputError(f"--out {out} is a file; it must be a folder")
    checkpoint = out / CHECKPOINT
    if not resume and checkpoint.exists():
        raise SearchInputError(f"{out} holds a search checkpoint: pass --resume to continue it, "
                               "or choose another output folder")
    if not resume and (out / "config.json").exists():
        raise SearchInputError(f"{out} already holds a model; choose another output folder")
    need = checkpoint_bytes(config.space) * 3 + 20 * 2**20  # checkpoint + its temporary copy + the model
    existing = out
    while not existing.exists():
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if free < need:
        raise SearchInputError(f"not enough free disk space for checkpoints in {existing}: "
                               f"{free / 2**20:,.0f} MB free, about {need / 2**20:,.0f} MB needed")


def checkpoint_bytes(space: SearchSpace) -> int:
    """Supernet weights and two Adam moments in float32, plus the architecture parameters."""
    params = sum(p.numel() for p in SuperNet(space).parameters()) + count_params(Architecture(space)) * 3
    return params * 4 * 3


def load_pairs(folders: list[Path], scale: int, patch: int, max_side: int | None) -> tuple[list[Pair], list[str]]:
    """LR/HR pairs of every readable image large enough for a patch; the rest named in `skipped`."""
    pairs, skipped = [], []
    for path in list_images(folders):
        try:
            hr = crop_to_multiple(load_rgb(path, max_side), scale)
        except (OSError, ValueError) as exc:
            skipped.append(f"{path}: unreadable ({exc.__class__.__name__})")
            continue
        if min(hr.shape[:2]) < patch * scale:
            skipped.append(f"{path}: smaller than a {patch * scale}px patch")
            continue
        pairs.append(Pair(make_lr(hr, scale), hr))
    return pairs, skipped


def load_val(folder: Path, scale: int) -> list[BenchmarkImage]:
    images = []
    for path in list_images([folder]):
        try:
            hr = crop_to_multiple(load_rgb(path), scale)
        except (OSError, ValueError):
            continue
        if min(hr.shape[:2]) >= 4 * scale:
            images.append(BenchmarkImage(path.stem, make_lr(hr, scale), hr))
    if not images:
        raise SearchInputError(f"no readable validation image of at least {4 * scale}px in {folder}")
    return images


def load_data(config: SearchConfig, train_dirs: list[Path], val_dirs: list[Path],
              max_side: int | None = 2048) -> SearchData:
    """Training pairs split into weight and architecture images (an even spread), and the val sets."""
    scale, patch = config.scale, config.patch
    pairs, skipped = load_pairs([Path(d) for d in train_dirs], scale, patch, max_side)
    if not pairs:
        raise SearchInputError(f"no usable training image in {', '.join(map(str, train_dirs))}: need readable "
                               f"images of at least {patch * scale}px for {patch}px LR patches at x{scale}")
    held = min(len(pairs) - 1, max(1, round(len(pairs) * config.heldout))) if config.heldout > 0 else 0
    chosen = {int((k + 1) * len(pairs) / held) - 1 for k in range(held)} if held else set()
    arch = [p for i, p in enumerate(pairs) if i in chosen] or pairs  # one image: it serves both
    train = [p for i, p in enumerate(pairs) if i not in chosen]
    val = {Path(d).name: load_val(Path(d), scale) for d in val_dirs}
    pixels = sum(p.lr.shape[0] * p.lr.shape[1] for p in train)
    return SearchData(PatchSampler(train, scale, patch, config.seed), PatchSampler(arch, scale, patch, config.seed + 1),
                      val, len(pairs), skipped, pixels / patch**2)

