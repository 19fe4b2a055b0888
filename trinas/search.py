"""One-phase trilevel search-and-train: rerun the search for any scale on your own data.

Weights and architecture parameters train together: every step takes an architecture step on held-out
training images (L1 + cost term + order term), then a weight step. Weights train alone until `arch_start`,
the architecture then learns under plain sparsemax for `sparsemax_phase`, and the sparsestmax radius grows
to its maximum at `search_end` (fractions of the run), so every distribution becomes one-hot; at that moment
the supernet *is* its derived TriNet (same output), which then simply keeps training with the weights (and
Adam moments) it has, at the speed of the final network. No retraining from scratch.

A batch is a pure function of (seed, step) and the checkpoint holds both models' state, both optimisers, the
phase and the step, so a killed run resumes exactly (with `steps`; a wall-clock budget follows the clock).
Single process on CPU or GPU, or one process per device under torchrun (DistributedDataParallel; gloo on
CPU, nccl on GPU; the global batch is split between ranks and rank 0 writes everything):

    upscale search --scale 2 --train DIR... --val DIR --out runs/search-x2 --time-budget 2h
    python -m torch.distributed.run --standalone --nproc-per-node 2 -m upscale search --scale 2 ...

The parts live beside this loop: settings and schedules (search_config), input checks and data
(search_data), torchrun (search_distributed), state and checkpoints (search_state), the architecture
objective (search_losses), the result and its report (search_result, search_report).
"""

from __future__ import annotations

import gc
import math
import os
import time
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from .allocator import keep_freed_memory
from .checkpoint import load_checkpoint, save_checkpoint
from .costs import CostModel, madds_cost
from .derive import choose, genotype_of
from .evaluate import score, upscale_with
from .search_config import (CHECKPOINT, SearchConfig, SearchInputError, lr_at, parse_count, parse_duration,
                            progress_of, radius_at)
from .search_data import SearchData, check_inputs, load_data
from .search_distributed import Ranks, average_grads, setup_ranks, shard, wrap
from .search_losses import Budget, architecture_loss, budgets_of, order_term, update_multipliers
from .search_result import SearchResult, finish, prune_found
from .search_state import Run, new_run, restore, state_of, switch_to_final
from .space import Genotype
from .supernet import ArchWeights

__all__ = ["CHECKPOINT", "SearchConfig", "SearchData", "SearchInputError", "SearchResult", "Status", "check_inputs",
           "load_data", "order_term", "parse_count", "parse_duration", "run_search", "search"]


@dataclass
class Status:
    """What a live view shows; sent after every step."""

    phase: str  # "search" (supernet, radius growing) or "train" (the derived network)
    step: int
    total_steps: int | None
    progress: float
    radius: float
    loss: float
    arch_loss: float | None
    expected_madds: float
    budget_madds: float | None
    val_psnr: float | None
    leading: str
    elapsed_s: float
    remaining_s: float
    entropy: dict[str, float]
    multipliers: dict[str, float] = field(default_factory=dict)  # each budget's multiplier, by cost key
    expected_latency_ms: float | None = None  # with a latency budget: the predicted frame time
    latency_ms: float | None = None  # the latency budget


def validate(run: Run, data: SearchData, weights: ArchWeights | None, device: torch.device) -> float:
    """Mean PSNR over every validation image, of the supernet (under `weights`) or of the derived network."""
    model = run.net if run.net is not None else partial(run.supernet, weights=weights)
    module = run.net if run.net is not None else run.supernet
    module.eval()
    try:
        scores = [s for name, images in data.val.items()
                  for s in score(name, images, run.config.scale, upscale_with(model, device)).images]
    finally:
        module.train()
    return float(np.mean([s.psnr for s in scores]))


def architecture_step(run: Run, data: SearchData, radius: float, budgets: list[Budget], ranks: Ranks,
                      device: torch.device) -> float:
    """One architecture step on held-out images: L1 + costs + order, gradients for the architecture only."""
    x, y = shard(data.arch.batch(run.step, run.config.batch), ranks, device)
    weights = run.arch.weights(radius)
    # Only while choices are being made (radius 0): the growing radius finishes them, it must not flip them.
    softmax = run.config.budget_gradient == "softmax" and radius == 0
    cost_weights = run.arch.weights(radius, softmax_gradient=True) if softmax else weights
    extra, expected = architecture_loss(run, cost_weights, budgets, radius)
    # The plain module, not the DDP wrapper: the weights' gradients are neither computed nor synchronised.
    loss = F.l1_loss(run.supernet(x, weights), y) + extra
    params = list(run.arch.parameters())
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    for p, g in zip(params, grads):
        p.grad = torch.zeros_like(p) if g is None else g
    average_grads(params, ranks)
    run.arch_opt.step()
    # The same on every rank: the architecture is identical everywhere.
    update_multipliers(run, budgets, {key: float(cost.detach()) for key, cost in expected.items()})
    return loss.item()


def weight_step(run: Run, model: torch.nn.Module, data: SearchData, weights: ArchWeights, lr: float,
                ranks: Ranks, device: torch.device) -> float:
    """One weight step of the supernet (under `weights`) or of the derived network; returns the batch's L1."""
    optimizer = run.weight_opt if run.net is None else run.net_opt
    for group in optimizer.param_groups:
        group["lr"] = lr
    x, y = shard(data.train.batch(run.step, run.config.batch), ranks, device)
    loss = F.l1_loss(model(x) if run.net is not None else model(x, weights), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    loss = loss.detach()
    if ranks.world > 1:  # the loss of the whole batch, not of this rank's share
        loss = loss.clone()
        dist.all_reduce(loss)
        loss /= ranks.world
    return loss.item()


def history_row(run: Run, data: SearchData, radius: float, lr: float, seconds: float, costs: dict[str, CostModel],
                validate_now: bool, device: torch.device) -> dict:
    """A point of the curves: losses since the last row, cost, entropies, leading network, validation PSNR."""
    weights = run.arch.weights(radius).detach()
    losses, arch_losses = run.pending["loss"], run.pending["arch_loss"]
    row = {"step": run.step, "seconds": round(seconds, 2), "phase": run.phase, "radius": radius, "lr": lr,
           "loss": float(np.mean(losses)) if losses else None,
           "arch_loss": float(np.mean(arch_losses)) if arch_losses else None,
           **{f"expected_{key}": float(cost.expected(weights)) for key, cost in costs.items()},
           "multipliers": dict(run.multipliers),
           "entropy": weights.entropies(), "leading": leading(run, weights).describe(),
           "val_psnr": validate(run, data, weights, device) if validate_now else None}
    run.pending = {"loss": [], "arch_loss": []}
    return row


def search(config: SearchConfig, data: SearchData, out: Path, device: str = "auto", resume: bool = False,
           until_step: int | None = None, on_status: Callable[[Status], None] | None = None,
           log: Callable[[str], None] = print) -> Run:
    """Run (or resume) the search-and-train loop until done, the time budget, or `until_step`."""
    ranks, dev = setup_ranks(device)
    keep_freed_memory()
    if config.batch % ranks.world:
        raise SearchInputError(f"batch {config.batch} does not split over {ranks.world} processes")
    if config.steps is None and config.epochs is not None:
        steps = max(1, math.ceil(config.epochs * data.patches_per_epoch / config.batch))
        config = replace(config, steps=steps, epochs=None)
    checkpoint = Path(out) / CHECKPOINT
    run = new_run(config, dev)
    state = load_checkpoint(checkpoint) if resume else None
    if state is not None:
        restore(run, state, dev)
        log(f"resumed {checkpoint} at step {run.step} ({run.phase})")
    if ranks.main:  # rank 0 times any missing layers first; the others then read its table
        budgets = budgets_of(config, log)
    if ranks.world > 1:
        dist.barrier()
    if not ranks.main:
        budgets = budgets_of(config, lambda line: None)
    costs = {b.key: b.cost for b in budgets}  # what the history records: every budget's cost, and madds always
    costs.setdefault("madds", madds_cost(config.space))
    limits = [(b.cost.of, b.limit) for b in budgets]
    model = wrap(run.supernet if run.net is None else run.net, ranks, dev)

    def save() -> None:
        if ranks.main:
            save_checkpoint(state_of(run), checkpoint)

    started, last_save = time.monotonic() - run.elapsed_s, time.monotonic()
    last_row = next((r for r in reversed(run.history)), None)
    while True:
        run.elapsed_s = time.monotonic() - started
        if ranks.world > 1 and config.steps is None:  # every rank follows rank 0's clock
            clock = torch.tensor([run.elapsed_s], dtype=torch.float64, device=dev)
            dist.broadcast(clock, 0)
            run.elapsed_s = float(clock)
        progress = progress_of(config, run.step, run.elapsed_s)
        if progress >= 1 or (until_step is not None and run.step >= until_step):
            break
        radius, lr = radius_at(config, progress), lr_at(config, progress)
        searching = run.net is None and progress >= config.arch_start
        if searching:
            run.pending["arch_loss"].append(architecture_step(run, data, radius, budgets, ranks, dev))
        weights = run.arch.weights(radius).detach()
        if searching and weights.one_hot():
            chosen = leading(run, weights)
            switch_to_final(run, weights, limits)
            model = wrap(run.net, ranks, dev)
            if run.net.genotype != chosen:
                spends = ", ".join(f"{b.cost.format(b.cost.of(chosen))} {b.cost.name}" for b in budgets)
                log(f"step {run.step}: the choice {chosen.describe()} spends {spends}, over the budget; "
                    "shrunk to fit it")
            log(f"step {run.step}: every distribution is one-hot; training {run.net.genotype.describe()}")
            save()
        run.pending["loss"].append(weight_step(run, model, data, weights, lr, ranks, dev))
        run.step += 1

        validate_now = run.step % config.val_every == 0 or run.step == config.steps
        if validate_now or run.step % config.log_every == 0:
            if ranks.main:
                last_row = history_row(run, data, radius, lr, time.monotonic() - started, costs, validate_now, dev)
                run.history.append(last_row)
            else:
                run.pending = {"loss": [], "arch_loss": []}
        if ranks.main:
            if on_status and last_row is not None:
                on_status(status_of(run, last_row, time.monotonic() - started))
            if time.monotonic() - last_save > config.checkpoint_every_s:
                save()
                last_save = time.monotonic()
    run.elapsed_s = time.monotonic() - started
    save()
    if ranks.world > 1:
        dist.barrier()
    return run


def leading(run: Run, weights: ArchWeights) -> Genotype:
    if run.net is not None:
        return run.net.genotype
    return genotype_of(run.config.space, choose(run.config.space, weights))


def status_of(run: Run, row: dict, seconds: float) -> Status:
    """The live view's numbers: the latest history row, at the current step and time."""
    config = run.config
    progress = min(1.0, progress_of(config, run.step, seconds))
    if config.steps is None:
        remaining = config.time_budget_s - seconds
    else:
        remaining = seconds / max(progress, 1e-9) * (1 - progress)
    val = next((r["val_psnr"] for r in reversed(run.history) if r.get("val_psnr") is not None), None)
    return Status(run.phase, run.step, config.steps, progress, row["radius"], row["loss"] or 0.0,
                  row["arch_loss"], row["expected_madds"], config.budget_madds, val, row["leading"], seconds,
                  max(0.0, remaining), row["entropy"], row.get("multipliers", {}), row.get("expected_latency_ms"),
                  config.latency_ms)


def is_done(run: Run) -> bool:
    return progress_of(run.config, run.step, run.elapsed_s) >= 1


def run_search(config: SearchConfig, train_dirs: list[Path], val_dirs: list[Path], out: Path,
               device: str = "auto", resume: bool = False, max_side: int | None = 2048,
               until_step: int | None = None, on_status: Callable[[Status], None] | None = None,
               log: Callable[[str], None] = print, command: str | None = None) -> SearchResult | None:
    """Check the input, prepare the data, search and train, write the model folder with its report.

    Returns None when the run stopped before the end (`until_step`), or on ranks other than 0.
    """
    check_inputs(config, train_dirs, val_dirs, out, resume)
    started = time.monotonic()
    data = load_data(config, train_dirs, val_dirs, max_side)
    for line in data.skipped[:5]:
        log(f"skipped {line}")
    if len(data.skipped) > 5:
        log(f"... and {len(data.skipped) - 5} more skipped images")
    log(f"{data.images} training images ({len(data.arch.pairs)} held out for architecture steps), "
        f"{sum(len(v) for v in data.val.values())} validation images, prepared in {time.monotonic() - started:.0f}s")
    Path(out).mkdir(parents=True, exist_ok=True)
    run = search(config, data, out, device, resume, until_step, on_status, log)
    ranks = Ranks(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")))
    try:
        if not is_done(run) or not ranks.main:
            return None
        budgets = budgets_of(config, lambda line: None)  # from the saved table
        limits = [(b.cost.of, b.limit) for b in budgets]
        latency_of = next((b.cost.of for b in budgets if b.key == "latency_ms"), None)
        result = finish(run, data, out, train_dirs, device, command, log, limits, latency_of)
        return prune_found(result, data, train_dirs, config, log) if config.prune else result
    finally:
        if ranks.world > 1 and dist.is_initialized():
            # DistributedDataParallel's reducer is held in reference cycles: collected at interpreter exit,
            # after the group is gone, its gloo threads aborted the process now and then ("terminate called
            # without an active exception": 1 of 10 two-process test searches on a loaded 2-core machine).
            # Collected here, while the group lives.
            gc.collect()
            dist.barrier()
            dist.destroy_process_group()
