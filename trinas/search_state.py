"""The state of a search run, what its checkpoint holds, and the switch to the derived network.

A killed run resumes exactly from the checkpoint: both models, both optimisers, the budgets' multipliers,
the step and the clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .derive import Limit, derive, inherited, slice_to
from .net import TRAIN_LAYOUT, TriNet
from .search_config import SearchConfig, SearchInputError
from .space import Genotype
from .supernet import Architecture, ArchWeights, SuperNet


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
    multipliers: dict[str, float] = field(default_factory=dict)  # each budget's Lagrange multiplier, by cost key

    @property
    def phase(self) -> str:
        return "search" if self.net is None else "train"


def new_run(config: SearchConfig, device: torch.device) -> Run:
    torch.manual_seed(config.seed)
    supernet = SuperNet(config.space).to(device, memory_format=TRAIN_LAYOUT)
    arch = Architecture(config.space, config.relaxation, config.depth_finish).to(device)
    weight_opt = torch.optim.Adam(supernet.parameters(), lr=config.lr)
    arch_opt = torch.optim.Adam(arch.parameters(), lr=config.arch_lr, betas=(config.arch_momentum, 0.999),
                                weight_decay=config.arch_weight_decay)
    return Run(config, supernet, arch, weight_opt, arch_opt)


def state_of(run: Run) -> dict:
    state = {"format": 1, "config": run.config.to_dict(), "step": run.step, "elapsed_s": run.elapsed_s,
             "history": run.history, "pending": run.pending, "multipliers": run.multipliers,
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
                            "relaxation", "depth_finish", "budget_gradient", "budget_penalty", "budget_mode", "latency_ms", "latency_at", "latency_device",
                            "latency_threads", "latency_tile", "prune", "prune_headroom") if getattr(saved, k) != getattr(run.config, k)]
    if mismatch:
        raise SearchInputError(f"the checkpoint was made with other settings ({', '.join(mismatch)}); "
                               "resume with the same options, or start in another output folder")
    run.supernet.load_state_dict(state["supernet"])
    run.arch.load_state_dict(state["arch"])
    run.weight_opt.load_state_dict(state["weight_opt"])
    run.arch_opt.load_state_dict(state["arch_opt"])
    run.step, run.elapsed_s, run.history = int(state["step"]), float(state["elapsed_s"]), list(state["history"])
    run.pending = {k: list(v) for k, v in state["pending"].items()}
    run.multipliers = {str(k): float(v) for k, v in state.get("multipliers", {}).items()}
    if "genotype" in state:
        run.net = TriNet(Genotype.from_dict(state["genotype"])).to(device, memory_format=TRAIN_LAYOUT)
        run.net.load_state_dict(state["net"])
        run.net_opt = torch.optim.Adam(run.net.parameters(), lr=run.config.lr)
        run.net_opt.load_state_dict(state["net_opt"])


def switch_to_final(run: Run, weights: ArchWeights, limits: list[Limit]) -> None:
    """Every distribution is one-hot: go on with the derived TriNet, its weights and Adam moments sliced.

    Cell filters start with fresh moments: the supernet's are those of the raw filters, not of the
    normalised ones the TriNet now trains."""
    run.net, choice = derive(run.supernet, weights, limits)
    run.net_opt = torch.optim.Adam(run.net.parameters(), lr=run.config.lr)
    for part in inherited(run.supernet, run.net, choice):
        moments = run.weight_opt.state.get(part.source) if part.source is not None else None
        if moments:  # none for reparametrised filters: the supernet's moments are the raw filter's
            shape = part.target.shape
            run.net_opt.state[part.target] = {
                "step": moments["step"].clone(),
                "exp_avg": slice_to(moments["exp_avg"], shape).clone(),
                "exp_avg_sq": slice_to(moments["exp_avg_sq"], shape).clone()}
