"""Training checkpoints: written atomically, read back without executing anything.

Checkpoints hold tensors, numbers and plain containers only, so `torch.load(weights_only=True)` (a
restricted unpickler that refuses code) can read them. They are our own files; published weights go out
as safetensors instead (see export.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write to a temporary file beside `path`, then rename: a kill never leaves a torn checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)
