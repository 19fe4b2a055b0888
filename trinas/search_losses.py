"""The architecture objective beside the reconstruction loss: the budget (a constraint held by a multiplier)
and the sorting term that prefers shorter networks."""

from __future__ import annotations

import math

import torch

from .search_state import Run
from .supernet import ArchWeights, expected_madds


def architecture_loss(run: Run, weights: ArchWeights, table: torch.Tensor,
                      radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The budget's multiplier times log(expected cost / budget), + the order term once the radius grows.

    The budget is a constraint, not a price: the multiplier is 0 while the expected cost is under it, so the
    reconstruction loss alone decides, and grows (dual ascent, `update_multiplier`) just enough to hold the
    cost at the budget. A fixed cost weight cannot do this: on a trained supernet its gradient was 6-50x the
    reconstruction gradient (benchmarks/architecture_gradients.py), so the choice followed cost rank.

    The order term waits for the radius: under plain sparsemax the depth is chosen from a noisy signal, and
    a constant push toward fewer cells adds up step after step where the noise averages out (it emptied
    the network in three x2 runs). Once the radius grows it breaks near-ties toward the shorter network.
    """
    config = run.config
    madds = expected_madds(config.space, weights, table)
    loss = madds.new_zeros(())
    if config.budget_madds:
        loss = loss + run.multiplier * torch.log(madds / config.budget_madds)
    if radius > 0:
        loss = loss + order_term(weights, config.order_weight)
    return loss, madds


def order_term(weights: ArchWeights, order_weight: float) -> torch.Tensor:
    """The sorting term: the mean keep weight of the cell slots, so fewer cells cost less."""
    kept = [keep.mean() for keep in weights.keep if keep.numel()]
    return order_weight * torch.stack(kept).mean() if kept else weights.trunk.new_zeros(())


def update_multiplier(run: Run, madds: float) -> None:
    """Dual ascent on the budget: up while over it, down (never below 0) while under it."""
    if run.config.budget_madds:
        excess = math.log(madds / run.config.budget_madds)
        run.multiplier = max(0.0, run.multiplier + run.config.multiplier_lr * excess)
