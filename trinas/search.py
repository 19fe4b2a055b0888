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

    python -m trinas.search --scale 2 --train DIR... --val DIR --out runs/search-x2 --time-budget 2h
    python -m torch.distributed.run --standalone --nproc-per-node 2 -m trinas.search --scale 2 ...
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from .checkpoint import load_checkpoint, save_checkpoint
from .cost import count_params, madds_per_output_pixel
from .derive import choose, derive, genotype_of, inherited, slice_to
from .evaluate import score, upscale_with
from .net import TriNet
from .search_config import (CHECKPOINT, SearchConfig, SearchInputError, lr_at, parse_count, parse_duration,
                            progress_of, radius_at)
from .search_data import SearchData, check_inputs, load_data
from .space import Genotype, SearchSpace
from .sparsestmax import MAX_RADIUS
from .supernet import Architecture, ArchWeights, SuperNet, cell_cost_table, expected_madds

__all__ = ["CHECKPOINT", "SearchConfig", "SearchData", "SearchInputError", "SearchResult", "Status", "check_inputs",
           "load_data", "parse_count", "parse_duration", "run_search", "search"]

# ------------------------------------------------------------------------------------------------ the run

@dataclass
class Ranks:
    """This process's place in a torchrun job (rank 0 of 1 when single-process)."""

    rank: int = 0
    world: int = 1
    started_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_ranks(device: str) -> tuple[Ranks, torch.device]:
    """Join the process group torchrun describes in the environment, and pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if world == 1:
        return Ranks(), torch.device(device)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    started = False
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        started = True
    if device.startswith("cuda"):
        torch.cuda.set_device(local)
        return Ranks(rank, world, started), torch.device("cuda", local)
    return Ranks(rank, world, started), torch.device(device)


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
    multiplier: float = 0.0  # the budget's multiplier: 0 while the expected cost is under the budget


@dataclass
class Run:
    """The mutable state of a search: what the checkpoint holds."""

    config: SearchConfig
    supernet: SuperNet
    arch: Architecture
    weight_opt: torch.optim.Optimizer
    arch_opt: torch.optim.Optimizer
    net: TriNet | None = None  # the derived network, from the moment every distribution is one-hot
    net_opt: torch.optim.Optimizer | None = None
    step: int = 0
    elapsed_s: float = 0.0
    history: list[dict] = field(default_factory=list)
    pending: dict[str, list[float]] = field(default_factory=lambda: {"loss": [], "arch_loss": []})  # since last row
    multiplier: float = 0.0  # the budget's Lagrange multiplier: 0 while the expected cost is under the budget

    @property
    def phase(self) -> str:
        return "search" if self.net is None else "train"


def new_run(config: SearchConfig, device: torch.device) -> Run:
    torch.manual_seed(config.seed)
    supernet = SuperNet(config.space).to(device)
    arch = Architecture(config.space, config.relaxation).to(device)
    weight_opt = torch.optim.Adam(supernet.parameters(), lr=config.lr)
    arch_opt = torch.optim.Adam(arch.parameters(), lr=config.arch_lr, betas=(config.arch_momentum, 0.999),
                                weight_decay=config.arch_weight_decay)
    return Run(config, supernet, arch, weight_opt, arch_opt)


def state_of(run: Run) -> dict:
    state = {"format": 1, "config": run.config.to_dict(), "step": run.step, "elapsed_s": run.elapsed_s,
             "history": run.history, "pending": run.pending, "multiplier": run.multiplier,
             "supernet": run.supernet.state_dict(),
             "arch": run.arch.state_dict(), "weight_opt": run.weight_opt.state_dict(),
             "arch_opt": run.arch_opt.state_dict()}
    if run.net is not None:
        state |= {"genotype": run.net.genotype.to_dict(), "net": run.net.state_dict(),
                  "net_opt": run.net_opt.state_dict()}
    return state


def restore(run: Run, state: dict, device: torch.device) -> None:
    saved = SearchConfig.from_dict(state["config"])
    mismatch = [k for k in ("space", "batch", "patch", "seed", "budget_madds", "steps", "time_budget_s",
                            "relaxation") if getattr(saved, k) != getattr(run.config, k)]
    if mismatch:
        raise SearchInputError(f"the checkpoint was made with other settings ({', '.join(mismatch)}); "
                               "resume with the same options, or start in another output folder")
    run.supernet.load_state_dict(state["supernet"])
    run.arch.load_state_dict(state["arch"])
    run.weight_opt.load_state_dict(state["weight_opt"])
    run.arch_opt.load_state_dict(state["arch_opt"])
    run.step, run.elapsed_s, run.history = int(state["step"]), float(state["elapsed_s"]), list(state["history"])
    run.pending = {k: list(v) for k, v in state["pending"].items()}
    run.multiplier = float(state.get("multiplier", 0.0))
    if "genotype" in state:
        run.net = TriNet(Genotype.from_dict(state["genotype"])).to(device)
        run.net.load_state_dict(state["net"])
        run.net_opt = torch.optim.Adam(run.net.parameters(), lr=run.config.lr)
        run.net_opt.load_state_dict(state["net_opt"])


def switch_to_final(run: Run, weights: ArchWeights) -> None:
    """Every distribution is one-hot: go on with the derived TriNet, its weights and Adam moments sliced.

    Cell filters start with fresh moments: the supernet's are those of the raw filters, not of the
    normalised ones the TriNet now trains."""
    run.net, choice = derive(run.supernet, weights, run.config.budget_madds)
    run.net_opt = torch.optim.Adam(run.net.parameters(), lr=run.config.lr)
    for part in inherited(run.supernet, run.net, choice):
        moments = run.weight_opt.state.get(part.source) if part.source is not None else None
        if moments:  # none for reparametrised filters: the supernet's moments are the raw filter's
            shape = part.target.shape
            run.net_opt.state[part.target] = {
                "step": moments["step"].clone(),
                "exp_avg": slice_to(moments["exp_avg"], shape).clone(),
                "exp_avg_sq": slice_to(moments["exp_avg_sq"], shape).clone()}


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


def _shard(batch: tuple[torch.Tensor, torch.Tensor], ranks: Ranks, device: torch.device):
    lr, hr = batch
    return lr[ranks.rank :: ranks.world].to(device), hr[ranks.rank :: ranks.world].to(device)


def _average_grads(params, ranks: Ranks) -> None:
    if ranks.world == 1:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad)
        p.grad /= ranks.world


def _wrap(model: torch.nn.Module, ranks: Ranks, device: torch.device) -> torch.nn.Module:
    if ranks.world == 1:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)


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


def architecture_step(run: Run, data: SearchData, radius: float, table: torch.Tensor, ranks: Ranks,
                      device: torch.device) -> float:
    """One architecture step on held-out images: L1 + cost + order, gradients for the architecture only."""
    x, y = _shard(data.arch.batch(run.step, run.config.batch), ranks, device)
    weights = run.arch.weights(radius)
    extra, madds = architecture_loss(run, weights, table, radius)
    # The plain module, not the DDP wrapper: the weights' gradients are neither computed nor synchronised.
    loss = F.l1_loss(run.supernet(x, weights), y) + extra
    params = list(run.arch.parameters())
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    for p, g in zip(params, grads):
        p.grad = torch.zeros_like(p) if g is None else g
    _average_grads(params, ranks)
    run.arch_opt.step()
    update_multiplier(run, float(madds.detach()))  # the same on every rank: the architecture is identical everywhere
    return loss.item()


def weight_step(run: Run, model: torch.nn.Module, data: SearchData, weights: ArchWeights, lr: float,
                ranks: Ranks, device: torch.device) -> float:
    """One weight step of the supernet (under `weights`) or of the derived network; returns the batch's L1."""
    optimizer = run.weight_opt if run.net is None else run.net_opt
    for group in optimizer.param_groups:
        group["lr"] = lr
    x, y = _shard(data.train.batch(run.step, run.config.batch), ranks, device)
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


def history_row(run: Run, data: SearchData, radius: float, lr: float, seconds: float, table: torch.Tensor,
                validate_now: bool, device: torch.device) -> dict:
    """A point of the curves: losses since the last row, cost, entropies, leading network, validation PSNR."""
    weights = run.arch.weights(radius).detach()
    losses, arch_losses = run.pending["loss"], run.pending["arch_loss"]
    row = {"step": run.step, "seconds": round(seconds, 2), "phase": run.phase, "radius": radius, "lr": lr,
           "loss": float(np.mean(losses)) if losses else None,
           "arch_loss": float(np.mean(arch_losses)) if arch_losses else None,
           "expected_madds": float(expected_madds(run.config.space, weights, table)),
           "multiplier": run.multiplier,
           "entropy": weights.entropies(), "leading": leading(run, weights).describe(),
           "val_psnr": validate(run, data, weights, device) if validate_now else None}
    run.pending = {"loss": [], "arch_loss": []}
    return row


def search(config: SearchConfig, data: SearchData, out: Path, device: str = "auto", resume: bool = False,
           until_step: int | None = None, on_status: Callable[[Status], None] | None = None,
           log: Callable[[str], None] = print) -> Run:
    """Run (or resume) the search-and-train loop until done, the time budget, or `until_step`."""
    ranks, dev = setup_ranks(device)
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
    table = cell_cost_table(config.space)
    model = _wrap(run.supernet if run.net is None else run.net, ranks, dev)

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
            run.pending["arch_loss"].append(architecture_step(run, data, radius, table, ranks, dev))
        weights = run.arch.weights(radius).detach()
        if searching and weights.one_hot():
            chosen = leading(run, weights)
            switch_to_final(run, weights)
            model = _wrap(run.net, ranks, dev)
            if run.net.genotype != chosen:
                log(f"step {run.step}: the choice {chosen.describe()} spends "
                    f"{madds_per_output_pixel(chosen):,.0f} multiply-adds per output pixel, over the budget; "
                    "shrunk to fit it")
            log(f"step {run.step}: every distribution is one-hot; training {run.net.genotype.describe()}")
            save()
        run.pending["loss"].append(weight_step(run, model, data, weights, lr, ranks, dev))
        run.step += 1

        validate_now = run.step % config.val_every == 0 or run.step == config.steps
        if validate_now or run.step % config.log_every == 0:
            if ranks.main:
                last_row = history_row(run, data, radius, lr, time.monotonic() - started, table, validate_now, dev)
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
                  max(0.0, remaining), row["entropy"], row.get("multiplier", 0.0))


def is_done(run: Run) -> bool:
    return progress_of(run.config, run.step, run.elapsed_s) >= 1


# -------------------------------------------------------------------------------------------- the result

@dataclass
class SearchResult:
    out: Path
    genotype: Genotype
    params: int
    madds_per_output_pixel: float
    budget_madds: float | None
    metrics: dict[str, dict[str, float]]
    steps: int
    seconds: float
    history: list[dict]
    files: list[str]


def finish(run: Run, data: SearchData, out: Path, train_dirs: list[Path], device: str = "auto",
           command: str | None = None, log: Callable[[str], None] = print) -> SearchResult:
    """Measure the final network on the validation sets and write the model folder and the report."""
    from .export import save_model
    from .search_report import write_report

    net = run.net
    if net is None:  # a run stopped before its distributions were one-hot: take the leading architecture
        net, _ = derive(run.supernet, run.arch.weights(MAX_RADIUS).detach(), run.config.budget_madds)
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    net = net.to(dev).eval()
    metrics = {}
    for name, images in data.val.items():
        result = score(name, images, run.config.scale, upscale_with(net, dev))
        metrics[name] = {"psnr": result.mean("psnr"), "ssim": result.mean("ssim"),
                         "bicubic_psnr": result.mean("bicubic_psnr"), "bicubic_ssim": result.mean("bicubic_ssim")}
    config = run.config
    training = {"data": [Path(d).name for d in train_dirs], "steps": run.step,
                "batch": config.batch, "patch": config.patch, "loss": "L1 (+ cost and order terms while searching)",
                "optimizer": "Adam, cosine lr; architecture: Adam", "lr": config.lr, "seed": config.seed,
                "seconds": round(run.elapsed_s, 1)}
    if command:
        training["command"] = command
    search_info = {"space": config.space.to_dict(), "budget_madds": config.budget_madds,
                   "arch_start": config.arch_start, "sparsemax_phase": config.sparsemax_phase,
                   "search_end": config.search_end,
                   "switched_at_step": next((r["step"] for r in run.history if r["phase"] == "train"), None)}
    save_model(net.cpu(), out, training={k: v for k, v in training.items() if v is not None}, metrics=metrics,
               searched=True, search=search_info)
    madds = madds_per_output_pixel(net.genotype)
    result = SearchResult(Path(out), net.genotype, count_params(net), madds, config.budget_madds, metrics,
                          run.step, run.elapsed_s, run.history, [])
    if config.budget_madds and madds > config.budget_madds:
        log(f"warning: the found network spends {madds:,.0f} multiply-adds per output pixel, over the budget of "
            f"{config.budget_madds:,.0f}; search longer or lower --budget-madds")
    result.files = write_report(result)
    (Path(out) / "search-history.json").write_text(json.dumps(run.history, indent=1) + "\n")
    result.files.append("search-history.json")
    return result


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
        return finish(run, data, out, train_dirs, device, command, log)
    finally:
        if ranks.world > 1 and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


# ---------------------------------------------------------------------------------------- command line

def config_from_args(args: argparse.Namespace) -> SearchConfig:
    space = SearchSpace(args.scale, max_width=args.max_width, ops=tuple(args.ops.split(",")) if args.ops else
                        SearchSpace(args.scale).ops, ops_per_cell=args.ops_per_cell, max_cells=args.max_cells,
                        max_cells_upsampled=args.max_cells_upsampled)
    budget = parse_count(args.budget_madds) if args.budget_madds else None
    length = {"steps": args.steps, "epochs": args.epochs,
              "time_budget_s": parse_duration(args.time_budget) if args.time_budget else None}
    if all(v is None for v in length.values()):
        length["time_budget_s"] = parse_duration("2h")
    return SearchConfig(space, batch=args.batch, patch=args.patch, budget_madds=budget, seed=args.seed,
                        val_every=args.val_every, **length)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scale", type=int, required=True)
    parser.add_argument("--train", nargs="+", required=True, type=Path, help="HR image folders")
    parser.add_argument("--val", nargs="+", required=True, type=Path, help="HR validation folders")
    parser.add_argument("--out", type=Path, required=True, help="model folder to write (holds the checkpoint)")
    parser.add_argument("--budget-madds", help="multiply-adds per output pixel, e.g. 28728 or 30k")
    parser.add_argument("--time-budget", help="wall-clock budget, e.g. 2h or 45m (default 2h)")
    parser.add_argument("--epochs", type=float)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=32)
    parser.add_argument("--val-every", type=int, default=200)
    parser.add_argument("--max-width", type=int, default=32)
    parser.add_argument("--max-cells", type=int, default=6)
    parser.add_argument("--max-cells-upsampled", type=int, default=1)
    parser.add_argument("--ops-per-cell", type=int, default=2)
    parser.add_argument("--ops", help="comma-separated candidate operations (default: all)")
    parser.add_argument("--max-side", type=int, default=2048)
    parser.add_argument("--threads", type=int)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rank = int(os.environ.get("RANK", "0"))
    log = print if rank == 0 else (lambda line: None)

    def show(status: Status) -> None:
        if status.step % 50 and status.progress < 1:
            return
        val = f"{status.val_psnr:.2f} dB" if status.val_psnr is not None else "-"
        log(f"[{status.phase}] step {status.step} r={status.radius:.2f} loss {status.loss:.4f} val {val} "
            f"madds {status.expected_madds:,.0f} {status.leading}")

    try:
        command = "python -m trinas.search " + " ".join(sys.argv[1:] if argv is None else argv)
        result = run_search(config_from_args(args), args.train, args.val, args.out, args.device, args.resume,
                            args.max_side, on_status=show, log=log, command=command.replace(" --resume", ""))
    except SearchInputError as exc:
        raise SystemExit(f"error: {exc}") from None
    if result is not None:
        log(f"wrote {result.out}: {result.genotype.describe()}, {result.params:,} params, "
            f"{result.madds_per_output_pixel:,.0f} multiply-adds per output pixel")


if __name__ == "__main__":
    main()
