"""The Genotype: a JSON-serialisable description of one network, the only thing a TriNet is built from.

A network is a head convolution, then a *path* of steps (cells at the current resolution, and upsamplers that
multiply the resolution), then a tail convolution, plus a global bicubic skip. The three levels the search
chooses are all visible here: the path (how many cells, where the upsamplers sit), the operations inside each
cell, and the width of every convolution inside a cell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .operations import DEFAULT_OPS, OPERATIONS, op_kind

# Upsampler factors a path may use: any integer scale 2..8 is a product of these.
UPSAMPLE_FACTORS = (2, 3, 5, 7)

# What the format supports: a genotype beyond these is refused before anything is built (a config file is
# input, and width 4096 or 10,000 cells would allocate gigabytes first).
MAX_WIDTH = 512  # channels of any layer
MAX_STEPS = 64  # cells and upsamplers in a path
TAILS = ("conv", "shuffle")  # see Genotype
MAX_OPS_PER_CELL = 8


@dataclass(frozen=True)
class Cell:
    """A chain of operations with a residual connection around it.

    `widths[i]` is the output width of `ops[i]`; the last width always equals the trunk width, so the
    residual adds up. A "skip" op keeps the width it receives.
    """

    ops: tuple[str, ...]
    widths: tuple[int, ...]


@dataclass(frozen=True)
class Upsample:
    """A sub-pixel convolution (conv to width*factor^2, then pixel shuffle) multiplying resolution by `factor`."""

    factor: int


Step = Cell | Upsample


@dataclass(frozen=True)
class Genotype:
    """One concrete network. `width` is the trunk width between cells.

    `tail`: "conv" (the path's upsamplers reach the output resolution, a 3x3 conv there makes the image, and a
    bicubic upscale of the input is added) or "shuffle" (every cell runs at the input resolution, the tail conv
    makes channels x scale^2 channels there, the input repeated into those channels is added and one pixel
    shuffle makes the image: nothing runs at the output resolution, the ESPCN/ECBSR layout of fast models)."""

    scale: int
    width: int
    path: tuple[Step, ...]
    channels: int = 3
    version: int = 1
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    tail: str = "conv"

    def __post_init__(self) -> None:
        validate(self)

    @property
    def cells(self) -> list[Cell]:
        return [s for s in self.path if isinstance(s, Cell)]

    def to_dict(self) -> dict[str, Any]:
        steps: list[dict[str, Any]] = []
        for step in self.path:
            if isinstance(step, Cell):
                steps.append({"type": "cell", "ops": list(step.ops), "widths": list(step.widths)})
            else:
                steps.append({"type": "upsample", "factor": step.factor})
        data = {"version": self.version, "scale": self.scale, "channels": self.channels,
                "width": self.width, "path": steps}
        return data if self.tail == "conv" else {**data, "tail": self.tail}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Genotype":
        try:
            path: list[Step] = []
            for step in data["path"]:
                if step["type"] == "cell":
                    path.append(Cell(tuple(step["ops"]), tuple(int(w) for w in step["widths"])))
                elif step["type"] == "upsample":
                    path.append(Upsample(int(step["factor"])))
                else:
                    raise ValueError(f"unknown path step type {step['type']!r}")
            return cls(scale=int(data["scale"]), width=int(data["width"]), path=tuple(path),
                       channels=int(data.get("channels", 3)), version=int(data.get("version", 1)),
                       tail=str(data.get("tail", "conv")))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed genotype: missing or wrong field {exc}") from exc

    def describe(self) -> str:
        """A one-line human summary, e.g. `32w: [conv3x3>conv3x3] x4 -> up2`."""
        parts = []
        for step in self.path:
            if isinstance(step, Cell):
                parts.append("[" + ">".join(f"{op}:{w}" for op, w in zip(step.ops, step.widths)) + "]")
            else:
                parts.append(f"up{step.factor}")
        if self.tail == "shuffle":
            parts.append(f"shuffle{self.scale}")
        return f"{self.width}w " + " ".join(parts)


def validate(genotype: Genotype) -> None:
    """Raise ValueError naming the problem if the genotype does not describe a buildable network."""
    if genotype.channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {genotype.channels}")
    if not 1 <= genotype.width <= MAX_WIDTH:
        raise ValueError(f"width must be 1..{MAX_WIDTH}, got {genotype.width}")
    if not 2 <= genotype.scale <= 8:
        raise ValueError(f"scale must be an integer from 2 to 8, got {genotype.scale}")
    if len(genotype.path) > MAX_STEPS:
        raise ValueError(f"a path has at most {MAX_STEPS} cells and upsamplers, got {len(genotype.path)}")
    product = 1
    for step in genotype.path:
        if isinstance(step, Upsample):
            if step.factor not in UPSAMPLE_FACTORS:
                raise ValueError(f"upsample factor must be one of {UPSAMPLE_FACTORS}, got {step.factor}")
            product *= step.factor
            continue
        if len(step.ops) == 0 or len(step.ops) != len(step.widths) or len(step.ops) > MAX_OPS_PER_CELL:
            raise ValueError(f"a cell needs as many widths as operations, 1..{MAX_OPS_PER_CELL} of them")
        unknown = [op for op in step.ops if op not in OPERATIONS]
        if unknown:
            raise ValueError(f"unknown operations {unknown}; known: {sorted(OPERATIONS)}")
        current = genotype.width
        for op, w in zip(step.ops, step.widths):
            if not 1 <= w <= MAX_WIDTH:
                raise ValueError(f"widths must be 1..{MAX_WIDTH}, got {w}")
            if op_kind(op).keeps_width and w != current:
                raise ValueError(f"{op} keeps its width: got {current} -> {w}")
            current = w
        if current != genotype.width:
            raise ValueError(f"a cell must end at the trunk width {genotype.width}, ends at {current}")
    if genotype.tail not in TAILS:
        raise ValueError(f"tail must be one of {', '.join(TAILS)}, got {genotype.tail!r}")
    if genotype.tail == "shuffle" and product != 1:
        raise ValueError("a shuffle tail makes the whole upscale: the path holds cells only, no upsamplers")
    if genotype.tail == "conv" and product != genotype.scale:
        raise ValueError(f"upsamplers multiply to x{product}, but the genotype says scale {genotype.scale}")


def upsample_factors(scale: int) -> list[int]:
    """Split an integer scale 2..8 into upsampler factors (x4 -> [2, 2], x6 -> [2, 3], x5 -> [5])."""
    if not 2 <= scale <= 8:
        raise ValueError(f"scale must be an integer from 2 to 8, got {scale}")
    factors, rest = [], scale
    for f in UPSAMPLE_FACTORS:
        while rest % f == 0:
            factors.append(f)
            rest //= f
    return factors


def baseline_genotype(scale: int, width: int = 32, cells: int = 4, op: str = "conv3x3") -> Genotype:
    """The hand-chosen baseline: `cells` residual cells of two 3x3 convs (or two `op`s) at LR, all upsampling
    at the end."""
    cell = Cell((op, op), (width, width))
    path: list[Step] = [cell] * cells + [Upsample(f) for f in upsample_factors(scale)]
    return Genotype(scale=scale, width=width, path=tuple(path))


def changes_width(name: str) -> bool:
    """Whether the kernel level may choose the output width of operation `name` (a skip or a residual block
    keeps the width it receives, so a cell position only narrows where it and the next operation both can)."""
    return not op_kind(name).keeps_width


@dataclass(frozen=True)
class SearchSpace:
    """What the trilevel search may choose from, for one scale.

    Network level: `max_cells` cell slots at the input resolution, then after each upsampler (factors from
    `upsample_factors(scale)`) `max_cells_upsampled` more slots at the new resolution, as long as that is at
    most `max_upsampled_scale` times the input (a cell at 4x the pixels costs 16 cells at the input); a depth
    distribution per segment keeps a prefix of its slots, so the segment lengths place the upsamplers.
    Cell level: `ops_per_cell` positions, each choosing from `ops`. Kernel level: the trunk width and the
    width between cell positions, each a fraction of `max_width`. With `tail="shuffle"` there are no
    upsamplers: `max_cells` slots at the input resolution and a shuffle tail (the layout of fast models).
    """

    scale: int
    max_width: int = 32
    width_fractions: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    ops: tuple[str, ...] = field(default_factory=lambda: tuple(DEFAULT_OPS))
    ops_per_cell: int = 2
    max_cells: int = 6
    max_cells_upsampled: int = 1
    max_upsampled_scale: int = 3
    channels: int = 3
    tail: str = "conv"  # "shuffle": no upsamplers, every cell at the input resolution (see Genotype)

    def __post_init__(self) -> None:
        object.__setattr__(self, "width_fractions", tuple(float(f) for f in self.width_fractions))
        object.__setattr__(self, "ops", tuple(self.ops))
        upsample_factors(self.scale)  # raises for a scale out of range
        unknown = [op for op in self.ops if op not in OPERATIONS]
        if unknown or not self.ops or len(set(self.ops)) != len(self.ops):
            raise ValueError(f"ops must be distinct names from {sorted(OPERATIONS)}, got {list(self.ops)}")
        if not self.width_fractions or not all(0 < f <= 1 for f in self.width_fractions):
            raise ValueError(f"width fractions must lie in (0, 1], got {self.width_fractions}")
        if not 1 <= self.max_width <= MAX_WIDTH or not 1 <= self.ops_per_cell <= 3:
            raise ValueError(f"max_width must be 1..{MAX_WIDTH} and ops_per_cell 1..3")
        if self.max_cells < 0 or self.max_cells_upsampled < 0:
            raise ValueError("cell counts cannot be negative")
        if self.tail not in TAILS:
            raise ValueError(f"tail must be one of {', '.join(TAILS)}, got {self.tail!r}")

    @property
    def factors(self) -> list[int]:
        """The upsamplers in a path: none with a shuffle tail, which makes the whole upscale at the end."""
        return upsample_factors(self.scale) if self.tail == "conv" else []

    @property
    def widths(self) -> tuple[int, ...]:
        """The candidate widths, ascending: slimmable convolutions use the first `w` filters of `max_width`."""
        return tuple(sorted({max(1, round(f * self.max_width)) for f in self.width_fractions}))

    @property
    def segments(self) -> list[int]:
        """Cell slots per resolution: before the first upsampler, then after each one."""
        segments, resolution = [self.max_cells], 1
        for f in self.factors:
            resolution *= f
            segments.append(self.max_cells_upsampled if resolution <= self.max_upsampled_scale else 0)
        return segments

    @property
    def slots(self) -> int:
        return sum(self.segments)

    def to_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "max_width": self.max_width, "width_fractions": list(self.width_fractions),
                "ops": list(self.ops), "ops_per_cell": self.ops_per_cell, "max_cells": self.max_cells,
                "max_cells_upsampled": self.max_cells_upsampled, "max_upsampled_scale": self.max_upsampled_scale,
                "channels": self.channels, "tail": self.tail}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SearchSpace":
        return cls(**{**data, "width_fractions": tuple(data["width_fractions"]), "ops": tuple(data["ops"])})


def has_inner_width(ops: tuple[str, ...], i: int) -> bool:
    """Whether op i of a cell has its own (inner) width: it and the next op both change width."""
    return i + 1 < len(ops) and changes_width(ops[i]) and changes_width(ops[i + 1])


def cell_widths(ops: tuple[str, ...], inner: tuple[int, ...], trunk: int) -> tuple[int, ...]:
    """The widths of a cell's operations: `inner[i]` where op i has an inner width, else the trunk."""
    return tuple(inner[i] if has_inner_width(ops, i) else trunk for i in range(len(ops)))


def random_genotype(space: SearchSpace, rng) -> Genotype:
    """A genotype of `space` drawn uniformly level by level (a numpy Generator): trunk width, each segment's
    depth, each operation, each inner width. The draw of the search controls and the latency check."""
    width = space.widths[rng.integers(len(space.widths))]
    path: list[Step] = []
    for k, size in enumerate(space.segments):
        for _ in range(int(rng.integers(size + 1))):
            ops = tuple(space.ops[i] for i in rng.integers(len(space.ops), size=space.ops_per_cell))
            inner = tuple(space.widths[i] for i in rng.integers(len(space.widths), size=space.ops_per_cell))
            path.append(Cell(ops, cell_widths(ops, inner, width)))
        if k < len(space.factors):
            path.append(Upsample(space.factors[k]))
    return Genotype(space.scale, width, tuple(path), channels=space.channels, tail=space.tail)
