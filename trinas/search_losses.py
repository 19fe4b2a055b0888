"""The architecture objective beside the reconstruction loss: the budgets (constraints held by multipliers)
and the sorting term that prefers shorter networks."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from .costs import CostModel, latency_cost, madds_cost
from .latency import Device, LatencyTable, busy_warning, calibrate_if_needed
from .search_config import SearchConfig, SearchInputError, frame_size
from .search_state import Run
from .supernet import ArchWeights
from .tiling import frame_tiles

# Context pixels per tile side the latency table's layers are timed with (8: the reach of about four cells);
# the prediction then follows each network's own reach (`trinas.costs.TileContext`), as the engine does.
LATENCY_TILE_PAD = 8


@dataclass
class Budget:
    cost: CostModel
    limit: float

    @property
    def key(self) -> str:
        return self.cost.key


def latency_model(config: SearchConfig, log: Callable[[str], None] = print, with_cells: bool = True) -> CostModel:
    """The predicted frame time of every network of the space on the device the config names, measured into
    (and read from) the device's latency table (`with_cells=False`: the fixed part only, in seconds)."""
    width, height = frame_size(config.latency_at)
    scale = config.space.scale
    try:
        device = Device.current(config.latency_device, config.latency_threads, half=config.latency_device == "cuda")
    except ValueError as exc:
        raise SearchInputError(str(exc)) from None
    table = LatencyTable(device)
    if stale := table.verify():
        log(stale)
    def tiles_at(pad: int) -> list[tuple[int, int]]:
        return frame_tiles(config.latency_device, height, width, scale, pad, config.latency_tile)

    tiles = tiles_at(LATENCY_TILE_PAD)
    busy = busy_warning(table.path) if device.kind == "cpu" else None
    if with_cells:
        calibrate_if_needed(table, config.space, tiles, log)
    model = latency_cost(config.space, table, tiles, with_cells, tiles_at)
    if table.measured:
        log(f"timed {table.measured} layers on {device.kind} (kept in {table.path})")
        if busy:
            log(f"warning: {busy}")
    table.save()
    return model


def budgets_of(config: SearchConfig, log: Callable[[str], None] = print, quick: bool = False) -> list[Budget]:
    """The budgets the search holds: multiply-adds and/or latency, each refused if below the cheapest network.
    `quick`: only what that check needs (a latency table's fixed part), for input checks in the first seconds."""
    budgets = []
    if config.budget_madds is not None:
        budgets.append(Budget(madds_cost(config.space), config.budget_madds))
    if config.latency_ms is not None:  # with pruning to follow, the architecture gets headroom for it
        limit = config.latency_ms * (config.prune_headroom if config.prune else 1.0)
        budgets.append(Budget(latency_model(config, log, with_cells=not quick), limit))
    for budget in budgets:
        least, fastest = budget.cost.cheapest()
        if budget.limit < least:
            raise SearchInputError(
                f"budget {budget.cost.format(budget.limit)} {budget.cost.name} is below the cheapest network of "
                f"this search space ({budget.cost.format(least)}: {fastest.describe()}); raise the budget")
    return budgets


def architecture_loss(run: Run, weights: ArchWeights, budgets: list[Budget],
                      radius: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Each budget's multiplier times log(expected cost / budget) plus a quadratic penalty on that log (the
    augmented Lagrangian: it damps the oscillation of cost and multiplier), + the order term once the radius
    grows.

    A budget is a constraint, not a price: its multiplier grows (dual ascent, `update_multipliers`) just
    enough to hold the expected cost at the budget. As a target (the default) it also turns negative while
    the cost is under the budget, so the search spends what it was given (the x2 search of 0.1 stopped at 57%
    of its budget with the multiplier at 0); as a ceiling ("at-most") it stays 0 there and the
    reconstruction loss alone decides. A fixed cost weight cannot do this: on a trained supernet its gradient
    was 6-50x the reconstruction gradient (benchmarks/architecture_gradients.py), so the choice followed cost
    rank.

    The order term waits for the radius: under plain sparsemax the depth is chosen from a noisy signal, and
    a constant push toward fewer cells adds up step after step where the noise averages out (it emptied
    the network in three x2 runs). Once the radius grows it breaks near-ties toward the shorter network.
    """
    loss = weights.trunk.new_zeros(())
    expected = {}
    for budget in budgets:
        cost = budget.cost.expected(weights)
        expected[budget.key] = cost
        excess = torch.log(cost / budget.limit)
        damped = excess if run.config.budget_mode == "target" else excess.clamp(min=0)
        loss = loss + run.multipliers.get(budget.key, 0.0) * excess + run.config.budget_penalty / 2 * damped**2
    if radius > 0:
        loss = loss + order_term(weights, run.config.order_weight)
    return loss, expected


def order_term(weights: ArchWeights, order_weight: float) -> torch.Tensor:
    """The sorting term: the mean keep weight of the cell slots, so fewer cells cost less."""
    kept = [keep.mean() for keep in weights.keep if keep.numel()]
    return order_weight * torch.stack(kept).mean() if kept else weights.trunk.new_zeros(())


def update_multipliers(run: Run, budgets: list[Budget], expected: dict[str, float]) -> None:
    """Dual ascent on each budget: up while over it, down while under it (never below 0 for a ceiling)."""
    for budget in budgets:
        excess = math.log(expected[budget.key] / budget.limit)
        value = run.multipliers.get(budget.key, 0.0) + run.config.multiplier_lr * excess
        run.multipliers[budget.key] = max(0.0, value) if run.config.budget_mode == "at-most" else value
