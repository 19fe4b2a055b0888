"""Distillation from a model's self-ensemble: the teacher's outputs, made once, as a second training target.

The mean of a trained model over the 8 flips and rotations of its input (`trinas.symmetry.self_ensemble`)
scores about 0.2 dB above the model itself on Set5 and costs 8 passes. Training a network towards that
ensemble's pictures as well as towards the ground truth asks one pass to do what eight did; the teacher may
be the model being trained on (its own ensemble) or any other model of the same scale.

The teacher runs once per training image, on the whole LR image (no patch borders, which a teacher run on
patches would see), before the first step; its outputs are kept as uint8 pictures like the HR images, so a
patch's three crops (LR, HR, teacher) stay aligned through `PatchSampler.batch_with_targets`.
"""

from __future__ import annotations

import time
from typing import Callable

import torch

from .data import Pair, to_tensor, to_uint8
from .symmetry import self_ensemble


@torch.inference_mode()
def teach(teacher: torch.nn.Module, pairs: list[Pair], device: torch.device | str = "cpu",
          precision: str = "fp32", log: Callable[[str], None] = print) -> None:
    """Set each pair's `target` to the teacher's self-ensemble output for its LR image (in `precision`)."""
    device = torch.device(device)
    teacher = teacher.to(device, memory_format=torch.channels_last).eval()  # as training runs
    started = time.monotonic()
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        for pair in pairs:
            x = to_tensor(pair.lr[None]).to(device)
            pair.target = to_uint8(self_ensemble(teacher, x, torch.channels_last))[0]
    log(f"the teacher's self-ensemble made targets for {len(pairs)} training images in "
        f"{time.monotonic() - started:.0f}s")


def distillation_loss(loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], output: torch.Tensor,
                      hr: torch.Tensor, target: torch.Tensor, weight: float) -> torch.Tensor:
    """The training loss towards the ground truth and towards the teacher, mixed by `weight` (the teacher's)."""
    return (1 - weight) * loss(output, hr) + weight * loss(output, target)
