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

    The budget is a constraint, not a price: the multiplier grows (dual ascent, `update_multiplier`) just
    enough to hold the expected cost at the budget. As a target (the default) it also turns negative while
    the cost is under the budget, so the search spends what it was given (the x2 search of 0.1 stopped at 57%
    of its budget with the multiplier at 0); as a ceiling ("at-most") it stays 0 there and the
    reconstruction loss alone decides. A fixed cost weight cannot do this: on a trained supernet its gradient was 6-50x the
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
    """Dual ascent on the budget: up while over it, down while under it (never below 0 for a ceiling)."""
    if run.config.budget_madds:
        excess = math.log(madds / run.config.budget_madds)
        run.multiplier = run.multiplier + run.config.multiplier_lr * excess
        if run.config.budget_mode == "at-most":
            run.multiplier = max(0.0, run.multiplier)
