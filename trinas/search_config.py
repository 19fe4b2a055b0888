"""What defines a search run: its settings, its schedules (radius, learning rate) and readable input values.

The schedules are functions of progress (0..1, by steps or by the clock), so a resumed run and a run under
torchrun follow the same curves.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields

from .space import SearchSpace
from .tiling import LATENCY_DEVICES
from .sparsestmax import BUDGET_GRADIENTS, MAX_RADIUS, RELAXATIONS
from .supernet import DEFAULT_DEPTH_FINISH, DEPTH_FINISHES

CHECKPOINT = "search-checkpoint.pt"
BUDGET_MODES = ("target", "at-most")


class SearchInputError(ValueError):
    """Input that would waste hours: the message names the problem and the fix."""


# Channels the pruning removes at a time (`upscale prune --step`, `upscale search --prune-step`): a smaller step
# stops closer to a budget, a larger one needs fewer rounds.
PRUNE_CHANNEL_STEP = 4


@dataclass
class SearchConfig:
    """Everything that defines a run; stored in the checkpoint (a resume must match it)."""

    space: SearchSpace
    steps: int | None = None  # a fixed number of steps: deterministic for a seed
    epochs: float | None = None  # converted to steps once the data is known
    time_budget_s: float | None = None  # or a wall-clock budget: schedules follow the clock
    batch: int = 16
    patch: int = 32
    lr: float = 1e-3
    min_lr: float = 1e-5
    warmup: float = 0.01  # fraction of the run with a linear learning-rate warm-up
    # The reconstruction gradient on a logit is ~1e-4..1e-3: a weight decay of that order caps the logit gaps
    # below 1, where sparsemax stays dense and the radius then locks in whichever choice leads by noise.
    arch_lr: float = 1e-2
    arch_weight_decay: float = 0.0
    # The per-batch architecture gradient is mostly noise (its sign flips between batches). Adam's first
    # moment averages it over ~1/(1 - arch_momentum) steps, so a logit drifts with the signal instead of
    # random-walking a full learning rate every step.
    arch_momentum: float = 0.9
    arch_start: float = 0.2  # fraction of the run training weights only, so cells can prove their worth
    # Then architecture steps under plain sparsemax (radius 0) for this long: the choices are made here, where
    # the gradient is informative. The growing radius only finishes them: once it pushes a distribution out to
    # its sphere, the gradient of the coordinates it zeroed is 0, so it cannot undo a choice.
    sparsemax_phase: float = 0.25
    # How logits become distributions: SSN's exact sparsestmax, or the support-centred variant that the x2
    # searches up to version 0.1 used (`trinas.sparsestmax.RELAXATIONS`).
    relaxation: str = "sparsestmax"
    # The gradient of the budget terms under plain sparsemax: "softmax" (straight-through in one-hot rows, so a
    # budget can still undo a choice) or "exact" (the relaxation's own, zero at a vertex; the x2 search of
    # ee3f0fa stuck at twice its budget with it). See `trinas.sparsestmax.with_softmax_gradient`.
    budget_gradient: str = "softmax"
    # How each segment's depth is finished as the radius grows (`trinas.supernet.DEPTH_FINISHES`).
    depth_finish: str = DEFAULT_DEPTH_FINISH
    search_end: float = 0.6  # fraction of the run at which the radius reaches MAX_RADIUS: all one-hot
    budget_madds: float | None = None  # per output pixel
    # "target": the expected cost is held at the budget from both sides, so the search spends it; "at-most":
    # the budget is only a ceiling (see `search_losses.architecture_loss`).
    budget_mode: str = "target"
    # A latency budget: milliseconds per output frame of `latency_at` ("1280x720") as the engine runs it on
    # `latency_device` ("cpu" with `latency_threads`, "cpu-bf16" likewise in bfloat16, or "cuda" in fp16), cut
    # into tiles of `latency_tile`
    # (None: the engine's default, 256 on the CPU, whole frames on a GPU). Joins or replaces `budget_madds`.
    latency_ms: float | None = None
    latency_at: str | None = None
    latency_device: str = "cpu"
    latency_threads: int | None = None
    latency_tile: int | None = None
    # Architecture search, then pruning search (Zhan et al.): with `prune`, the architecture is searched to a
    # latency budget `prune_headroom` times looser, and its channels are then pruned to the budget and the
    # network fine-tuned for `prune_steps` (`trinas.prune`), `prune_channel_step` channels removed at a time.
    prune: bool = False
    prune_headroom: float = 1.3
    prune_steps: int = 2000
    prune_channel_step: int = PRUNE_CHANNEL_STEP
    multiplier_lr: float = 1e-3  # how fast the budget's multiplier grows per step over budget (dual ascent)
    # The augmented Lagrangian's quadratic term, (penalty / 2) * log(cost / budget)^2 (one-sided for a ceiling):
    # it damps the primal-dual loop. Without it the x2 search of ab48594 swung between 4,000 and 82,000
    # multiply-adds (budget 28,728) with a period of about 500 steps while the multiplier lagged behind. At 1
    # it held the cost but its gradient, flipping sign each step, filled Adam's second moment and the
    # architecture stopped moving (entropy 0.96 after 400 steps of the x2 run 21f47d4); 0.05 holds the cost
    # as well and lets the reconstruction choose.
    budget_penalty: float = 0.05
    # The sorting term; it only acts once the radius grows (see `search.architecture_loss`).
    order_weight: float = 2e-4
    heldout: float = 0.1  # fraction of training images kept for architecture steps
    seed: int = 0
    val_every: int = 200
    log_every: int = 10
    checkpoint_every_s: float = 120.0

    def __post_init__(self) -> None:
        if isinstance(self.space, dict):
            self.space = SearchSpace.from_dict(self.space)
        chosen = [v for v in (self.steps, self.epochs, self.time_budget_s) if v is not None]
        if len(chosen) != 1 or chosen[0] <= 0:
            raise SearchInputError("give exactly one positive length: steps, epochs or a time budget")
        if not (0 <= self.arch_start and 0 <= self.sparsemax_phase
                and self.arch_start + self.sparsemax_phase < self.search_end <= 1):
            raise SearchInputError("need 0 <= arch_start, 0 <= sparsemax_phase and "
                                   "arch_start + sparsemax_phase < search_end <= 1")

        if self.latency_ms is not None:
            if self.latency_ms <= 0:
                raise SearchInputError(f"a latency budget must be positive, got {self.latency_ms} ms")
            if self.latency_at is None:
                raise SearchInputError("a latency budget needs the frame it is for: --at WIDTHxHEIGHT, e.g. 1280x720")
            frame_size(self.latency_at)
            if self.latency_device not in LATENCY_DEVICES:
                raise SearchInputError(f"latency device must be one of {', '.join(LATENCY_DEVICES)}, got "
                                       f"{self.latency_device!r}")
        if self.prune and self.latency_ms is None:
            raise SearchInputError("--prune prunes to a latency budget: give --latency-ms and --at")
        if self.prune_headroom < 1:
            raise SearchInputError(f"the pruning headroom must be at least 1, got {self.prune_headroom}")
        if self.budget_mode not in BUDGET_MODES:
            raise SearchInputError(f"unknown budget mode {self.budget_mode!r}; use one of {', '.join(BUDGET_MODES)}")
        if self.relaxation not in RELAXATIONS:
            raise SearchInputError(f"unknown relaxation {self.relaxation!r}; use one of {', '.join(RELAXATIONS)}")
        if self.depth_finish not in DEPTH_FINISHES:
            raise SearchInputError(f"unknown depth finish {self.depth_finish!r}; "
                                   f"use one of {', '.join(DEPTH_FINISHES)}")
        if self.budget_gradient not in BUDGET_GRADIENTS:
            raise SearchInputError(f"unknown budget gradient {self.budget_gradient!r}; "
                                   f"use one of {', '.join(BUDGET_GRADIENTS)}")

    @classmethod
    def from_dict(cls, data: dict) -> "SearchConfig":
        """A stored config; settings this version no longer has are ignored, so old checkpoints still load."""
        known = {f.name for f in fields(cls)}
        # What configs from before these choices existed ran with: the relaxation's own gradient, no penalty,
        # the depth finished at its most likely count.
        data = {"budget_gradient": "exact", "budget_penalty": 0.0, "depth_finish": "argmax", **data}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def scale(self) -> int:
        return self.space.scale

    def to_dict(self) -> dict:
        return {**asdict(self), "space": self.space.to_dict()}


def progress_of(config: SearchConfig, step: int, elapsed_s: float) -> float:
    """How far the run is, 0..1: by steps, or by the clock under a time budget."""
    if config.steps is not None:
        return step / config.steps
    return elapsed_s / config.time_budget_s


def radius_at(config: SearchConfig, progress: float) -> float:
    """0 until `arch_start + sparsemax_phase`, then linear up to MAX_RADIUS at `search_end`.

    The sparsemax phase matters: at the uniform start every sparsestmax with a radius > 0 pushes along a
    fixed direction with zero gradient, so the logits would never leave zero and every choice would fall to
    the first option. Under plain sparsemax the logits learn first; the radius then sharpens what they learnt.
    """
    begin = config.arch_start + config.sparsemax_phase
    t = (progress - begin) / (config.search_end - begin)
    return MAX_RADIUS * min(1.0, max(0.0, t))


def lr_at(config: SearchConfig, progress: float) -> float:
    """Linear warm-up, then cosine decay from `lr` to `min_lr` over the whole run."""
    if progress < config.warmup:
        return config.lr * max(progress / config.warmup, 0.01)
    t = (progress - config.warmup) / max(1e-9, 1 - config.warmup)
    return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1 + math.cos(math.pi * min(1.0, t)))


def frame_size(text: str) -> tuple[int, int]:
    """'1280x720' -> (1280, 720): an output frame, width by height."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not match or min(int(match.group(1)), int(match.group(2))) < 16:
        raise SearchInputError(f"cannot read the frame size {text!r}: use WIDTHxHEIGHT, e.g. 1280x720")
    return int(match.group(1)), int(match.group(2))


def parse_duration(text: str) -> float:
    """'90s', '45m', '2h', '1h30m' or plain seconds -> seconds."""
    text = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([smh])", text)
    if not parts or "".join(a + b for a, b in parts) != text.replace(" ", ""):
        raise SearchInputError(f"cannot read the duration {text!r}: use e.g. 90s, 45m, 2h or 1h30m")
    return sum(float(v) * {"s": 1, "m": 60, "h": 3600}[u] for v, u in parts)


def parse_count(text: str) -> float:
    """'28728', '28.7k', '1.5M' -> a number."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*", str(text))
    if not match:
        raise SearchInputError(f"cannot read the number {text!r}: use e.g. 30000, 30k or 1.2M")
    return float(match.group(1)) * {"": 1, "k": 1e3, "m": 1e6}[match.group(2).lower()]



# What `upscale search` searches unless told otherwise: the space of the x2 reference search v10, the first
# search to win its controls (first of 11 on both sets over two seeds; README "Does the search beat chance?"):
# `skip` and the operation that paid in every comparison (`ecb3x3`), every cell at the input resolution (each
# controls table put the networks with a cell after an upsampler at the bottom). The whole registry is one
# `--ops` away, cells after the upsamplers one `--max-cells-upsampled`.
SEARCH_OPS = "skip,ecb3x3"
SEARCH_MAX_CELLS_UPSAMPLED = 0


def build_config(scale: int, *, budget_madds: str | float | None = None, time_budget: str | None = None,
                 epochs: float | None = None, steps: int | None = None, seed: int = 0, max_width: int = 32,
                 max_cells: int = 6, max_cells_upsampled: int = SEARCH_MAX_CELLS_UPSAMPLED, ops_per_cell: int = 2,
                 ops: str | None = SEARCH_OPS,
                 tail: str = "conv", batch: int = 16, patch: int = 32, val_every: int = 200,
                 relaxation: str = "sparsestmax", budget_gradient: str = "softmax", budget_penalty: float = 0.05,
                 budget_mode: str = "target", depth_finish: str = DEFAULT_DEPTH_FINISH,
                 latency_ms: float | None = None, latency_at: str | None = None, latency_device: str = "cpu",
                 latency_threads: int | None = None,
                 latency_tile: int | None = None, prune: bool = False, prune_steps: int = 2000,
                 prune_channel_step: int = PRUNE_CHANNEL_STEP) -> SearchConfig:
    """A search's options, as people write them, into a SearchConfig: the one place this happens.

    Give at most one length (steps, epochs or a time budget such as "2h"); none means a two-hour budget."""
    lengths = {"steps": steps, "epochs": epochs, "time_budget_s": parse_duration(time_budget) if time_budget else None}
    given = {k: v for k, v in lengths.items() if v is not None}
    if len(given) > 1:
        raise SearchInputError("give one length: --steps, --epochs or --time-budget")
    try:
        space = SearchSpace(scale, max_width=max_width, max_cells=max_cells, max_cells_upsampled=max_cells_upsampled,
                            ops_per_cell=ops_per_cell, tail=tail,
                            **({"ops": tuple(o.strip() for o in ops.split(","))} if ops else {}))
    except ValueError as exc:
        raise SearchInputError(str(exc)) from None
    return SearchConfig(space, batch=batch, patch=patch, seed=seed, val_every=val_every, relaxation=relaxation,
                        budget_gradient=budget_gradient, budget_penalty=budget_penalty, budget_mode=budget_mode,
                        depth_finish=depth_finish, latency_ms=latency_ms,
                        latency_at=latency_at, latency_device=latency_device, latency_threads=latency_threads,
                        latency_tile=latency_tile,
                        prune=prune, prune_steps=prune_steps, prune_channel_step=prune_channel_step,
                        budget_madds=parse_count(budget_madds) if budget_madds is not None else None,
                        **(given or {"time_budget_s": parse_duration("2h")}))
