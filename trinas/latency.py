"""Latency that is measured, not guessed: a per-device table of layer times, and a network's time from it.

Multiply-adds mislead (a network with 6% fewer ran 1.04x faster), so the search and the pruning ask this
table instead. A network is cut into the layers it runs (head, each cell operation, each cell's ReLUs and
residual add, each upsampler, tail, the bicubic skip and the final add), each layer is timed once on the
target device at the input size it sees (folded, channels-last, fp32 on the CPU, fp16 on CUDA if asked) and
stored under the user's cache folder, one file per device; a network's time on an input is the sum of its
layers' times, and a frame's time is the sum over the tiles the engine cuts it into. Layers are timed the
first time a prediction needs them, so a table fills itself in; `benchmarks/latency_check.py` prints how
well the sums match measured frame times.

Timed alone, layers do not add up exactly (on our 2-core CPU narrow networks ran up to 1.7x faster than
their layers' sum, wide ones up to 1.8x slower), so a table can be calibrated, as the follow-up paper fits
a regressor: whole random networks are timed and a non-negative scale per layer kind, a cost per network
call (carried by the head layer), per layer run and per megabyte of activations are fitted to them.
Predictions stay sums of per-layer costs, so a search's expected latency stays exact.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import nnls
from torch import nn

from .allocator import allocator_name, keep_freed_memory
from .files import read_bounded
from .net import TriNet, UpsampleBlock, absorbs_residual, fold, make_op
from .operations import add_to_new, add_to_subpixels, op_kind, relu_new
from .precision import DTYPES
from .space import Cell, Genotype, SearchSpace, Upsample, random_genotype
from .tiling import LATENCY_DEVICES

TABLE_VERSION = 3  # 2: the ReLU and the add timed in place, as inference runs them; 3: the shuffle tail's
# nearest skip added into the sub-pixel channels as one layer (`add_to_subpixels`)
LAYER_KINDS = ("op", "relu", "add", "up", "head", "tail", "bicubic", "nearest_add", "shuffle")
FILL_GROUP = 64  # layers timed interleaved at once
FILL_MEGABYTES = 1024.0  # and at most this much activation memory among them
CALL = "call"  # the calibration's cost of one network call, in ms
LAYER = "layer"  # the calibration's cost of running one more layer inside a network, in ms
TRAFFIC = "traffic"  # the calibration's cost of moving activations, in ms per MB
FITTED = (*LAYER_KINDS, CALL, LAYER, TRAFFIC)  # what a calibration holds
FIT_MARGIN = 0.8  # a calibration is kept only with at most this share of the layer sums' error (`fit_pays`)
CALIBRATION_NETWORKS = 16  # random networks timed whole to calibrate a table before it sets a budget
PROC_STAT = Path("/proc/stat")  # the kernel's CPU time counters (Linux)
MAX_TABLE_BYTES = 64 << 20  # a table holds a few thousand layer times (under 1 MB); read no further than this
STALE_TOLERANCE = 0.10  # a table whose reference layers now run this much faster or slower is re-measured


@dataclass(frozen=True)
class Device:
    """Where the network runs: what a latency table is valid for."""

    kind: str = "cpu"  # "cpu" or "cuda"
    threads: int = 0  # CPU threads (0 on a GPU)
    half: bool = False  # fp16 (GPU only)
    name: str = ""  # processor or GPU model
    torch_version: str = torch.__version__
    allocator: str = ""  # CPU: `trinas.allocator.allocator_name()`: large layers differ up to 2x
    bf16: bool = False  # bfloat16 on the CPU (the engine's --precision bf16; 2-3x fp32's speed with AMX)

    @classmethod
    def current(cls, kind: str = "cpu", threads: int | None = None, half: bool = False) -> "Device":
        """The device of a latency table by its name (LATENCY_DEVICES): `cpu` (fp32, `threads`), `cpu-bf16`
        (bfloat16 on the CPU) or `cuda` (with `half`: fp16)."""
        if kind == "cpu-bf16":
            return replace(cls.current("cpu", threads), bf16=True)
        if kind == "cuda":
            if not torch.cuda.is_available():
                raise ValueError("a CUDA latency table needs a CUDA GPU, and this torch build sees none")
            return cls("cuda", 0, half, torch.cuda.get_device_name())
        if kind != "cpu":
            raise ValueError(f"latency device must be one of {', '.join(LATENCY_DEVICES)}, got {kind!r}")
        if half:
            raise ValueError("fp16 latency is measured on a GPU only; the CPU runs fp32")
        keep_freed_memory()  # applied here: timing runs under it
        return cls("cpu", threads or torch.get_num_threads(), False, cpu_name(), allocator=allocator_name())

    @property
    def key(self) -> str:
        """A file-safe name: the same device, threads, precision and torch share one table."""
        text = f"{self.kind}-{self.name}-t{self.threads}-{self.precision}-torch{self.torch_version}"
        text += f"-malloc_{self.allocator}" if self.allocator else ""
        return "".join(c if c.isalnum() or c in "-._" else "_" for c in text)

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.kind)

    @property
    def precision(self) -> str:
        return "fp16" if self.half else "bf16" if self.bf16 else "fp32"

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.precision]


def cpu_name() -> str:
    """The CPU model, as the system names it (e.g. "AMD EPYC 7B13"): speed figures say what they ran on."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def busy_warning(table: Path | None = None) -> str | None:
    """A warning when other work keeps the CPU busy: whatever is timed then is inflated, and a table keeps it
    (an x4 check timed beside a running search put the cheapest x4 network at 241 ms; idle, 46 ms). `table`:
    the file to delete to measure again [default: the cache folder]."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    busy = busy_cores()
    if busy is None:  # no /proc/stat: the load average, which lags by a minute
        try:
            busy = os.getloadavg()[0]
        except OSError:
            return None
    if busy < 0.5 * cores:
        return None
    return (f"the machine is busy (other work on {busy:.1f} of {cores} cores): layer and frame times measured "
            f"now are inflated, and the latency table keeps them; time on an idle machine (delete "
            f"{table or default_cache()} to measure again)")


def busy_cores(seconds: float = 0.5) -> float | None:
    """How many of the cores this process may use were busy over the next `seconds` while it slept, from
    /proc/stat (None where there is none). The one-minute load average it replaces still counted a check
    that had just ended and called an idle machine busy."""
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None

    def snapshot() -> tuple[int, int]:
        total = idle = 0
        for line in PROC_STAT.read_text().splitlines():
            name, *values = line.split()
            if not (name.startswith("cpu") and name[3:].isdigit()) or (allowed and int(name[3:]) not in allowed):
                continue
            ticks = [int(v) for v in values[:8]]  # user nice system idle iowait irq softirq steal
            total, idle = total + sum(ticks), idle + ticks[3] + ticks[4]
        return total, idle

    try:
        total, idle = snapshot()
        time.sleep(seconds)
        total2, idle2 = snapshot()
    except (OSError, ValueError, IndexError):
        return None
    cores = len(allowed) if allowed else (os.cpu_count() or 1)
    spent = total2 - total
    return cores * (1 - (idle2 - idle) / spent) if spent > 0 else None


def default_cache() -> Path:
    """`$TRINAS_CACHE/latency`, else `$XDG_CACHE_HOME/trinas/latency`, else `~/.cache/trinas/latency`."""
    if os.environ.get("TRINAS_CACHE"):
        return Path(os.environ["TRINAS_CACHE"]) / "latency"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "trinas" / "latency"


@dataclass(frozen=True)
class Layer:
    """One timed unit: a kind (LAYER_KINDS), its parameters and the input height and width it runs at."""

    kind: str
    args: tuple
    height: int
    width: int

    @property
    def key(self) -> str:
        return f"{self.kind}:{','.join(map(str, self.args))}@{self.height}x{self.width}"

    @property
    def megabytes(self) -> float:
        """Activations the layer reads and writes (fp32): in a whole network they come from and go to memory,
        where a layer timed alone on one reused input finds them in cache (wide networks ran up to 1.8x
        slower than their layers' sum on our CPU)."""
        kind, args = self.kind, self.args
        channels = {"head": lambda: args[0] + args[1], "tail": lambda: args[0] + args[1],
                    "op": lambda: args[1] + args[2], "up": lambda: args[0] + 2 * args[0] * args[1] ** 2,
                    "relu": lambda: 2 * args[0], "add": lambda: 3 * args[0],
                    "bicubic": lambda: args[0] + args[0] * args[1] ** 2,
                    "nearest_add": lambda: args[0] + 2 * args[0] * args[1] ** 2,
                    "shuffle": lambda: 2 * args[0] * args[1] ** 2}[kind]()
        return 4 * channels * self.height * self.width / 1e6


REFERENCE_LAYERS = (Layer("op", ("conv3x3", 32, 32), 128, 128), Layer("up", (24, 2), 96, 96),
                    Layer("relu", (32,), 192, 192))  # timed to tell whether a table was filled on this machine


def layers_of(genotype: Genotype, height: int, width: int) -> list[Layer]:
    """Every layer a TriNet of `genotype` runs on a height x width input."""
    return [layer for _, layers in parts_of(genotype, height, width) for layer in layers]


def parts_of(genotype: Genotype, height: int, width: int) -> list[tuple[str, list[Layer]]]:
    """`layers_of` grouped by the network's modules, in the order they run: "head", "body.N" (a cell or an
    upsampler), "tail", and "skip" (what runs outside them: the bicubic or nearest skip and the shuffle), so
    a module's time inside the network can be set beside its layers' times alone."""
    c, w, s = genotype.channels, genotype.width, genotype.scale
    head = ("head", [Layer("head", (c, w), height, width)])
    if genotype.tail == "shuffle":  # everything at the input resolution, then one shuffle
        cells = [(f"body.{b}", cell_layers(cell, w, height, width)) for b, cell in enumerate(genotype.cells)]
        return [head, *cells, ("tail", [Layer("tail", (w, c * s * s), height, width)]),
                ("skip", [Layer("nearest_add", (c, s), height, width), Layer("shuffle", (c, s), height, width)])]
    parts = [head]
    h_, w_ = height, width
    for b, step in enumerate(genotype.path):
        if isinstance(step, Upsample):
            parts.append((f"body.{b}", [Layer("up", (w, step.factor), h_, w_)]))
            h_, w_ = h_ * step.factor, w_ * step.factor
        else:
            parts.append((f"body.{b}", cell_layers(step, w, h_, w_)))
    return parts + [("tail", [Layer("tail", (w, c), h_, w_)]),
                    ("skip", [Layer("bicubic", (c, s), height, width), Layer("add", (c,), h_, w_)])]


def cell_layers(cell: Cell, trunk: int, height: int, width: int) -> list[Layer]:
    """The layers of one folded cell on a height x width input: its operations, the ReLUs between, and the
    residual add (unless the cell's single convolution absorbed it)."""
    layers, cin = [], trunk
    for i, (op, cout) in enumerate(zip(cell.ops, cell.widths)):
        if i > 0:
            layers.append(Layer("relu", (cin,), height, width))
        layers.append(Layer("op", (op_kind(op).runs_as or op, cin, cout), height, width))
        cin = cout
    return layers if absorbs_residual(cell) else layers + [Layer("add", (trunk,), height, width)]


class _Elementwise(nn.Module):
    """A layer without weights. The ReLU and the add write into their input, as the network does at inference
    (`relu_new`, `add_to_new`, `add_to_subpixels`); the second operand of an add is a tensor of its own."""

    def __init__(self, kind: str, scale: int = 1) -> None:
        super().__init__()
        self.kind, self.scale = kind, scale
        self.other: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "relu":
            return relu_new(x)
        if self.kind == "add":
            if self.other is None or self.other.shape != x.shape:
                self.other = torch.rand_like(x)
            return add_to_new(x, self.other)
        if self.kind == "nearest_add":  # x: the tail's output; `other`: the network's input
            if self.other is None or self.other.shape[2:] != x.shape[2:]:
                self.other = torch.rand_like(x[:, :x.shape[1] // self.scale**2])
            return add_to_subpixels(x, self.other, self.scale)
        if self.kind == "shuffle":
            return F.pixel_shuffle(x, self.scale)
        return F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)


def layer_module(layer: Layer) -> tuple[nn.Module, int]:
    """The module a layer runs (folded, as inference runs it) and its input channels."""
    kind, args = layer.kind, layer.args
    if kind == "op":
        name, cin, cout = args
        return make_op(name, cin, cout, folded=True), cin
    if kind == "head":
        return nn.Conv2d(args[0], args[1], 3, padding=1), args[0]
    if kind == "tail":
        return nn.Conv2d(args[0], args[1], 3, padding=1), args[0]
    if kind == "up":
        return UpsampleBlock(args[0], args[1]), args[0]
    if kind in ("relu", "add"):
        return _Elementwise(kind), args[0]
    if kind == "bicubic":
        return _Elementwise(kind, args[1]), args[0]
    if kind in ("shuffle", "nearest_add"):
        return _Elementwise(kind, args[1]), args[0] * args[1] ** 2
    raise ValueError(f"unknown layer kind {kind!r}")


def time_modules(items: list[tuple[nn.Module, int, int, int]], device: Device, min_seconds: float = 0.05,
                 rounds: int = 5) -> list[float]:
    """Each (module, input channels, height, width)'s milliseconds per forward pass on a channels-last input:
    its fastest round after a warm-up (the fastest: on a shared machine other work only ever adds time). The
    rounds are interleaved, every module once per round, so a burst of other work spoils one round of many
    layers rather than every round of one: timed one after another, a bicubic layer once came out 2.4x its
    neighbours of nearly the same size, and the networks using it were predicted 20% slow."""
    keep_freed_memory()  # as the engine runs
    sync = torch.cuda.synchronize if device.kind == "cuda" else (lambda: None)
    prepared = []
    with torch.inference_mode():
        for module, channels, height, width in items:
            module = module.to(device.torch_device, device.dtype).eval().to(memory_format=torch.channels_last)
            x = torch.rand(1, channels, height, width, device=device.torch_device, dtype=device.dtype)
            x = x.contiguous(memory_format=torch.channels_last)
            module(x)
            sync()
            start = time.perf_counter()
            module(x)
            sync()
            once = max(time.perf_counter() - start, 1e-6)
            prepared.append((module, x, max(1, min(100, int(min_seconds / rounds / once)))))
        samples: list[list[float]] = [[] for _ in prepared]
        for _ in range(rounds):
            for (module, x, repeats), times in zip(prepared, samples):
                start = time.perf_counter()
                for _ in range(repeats):
                    module(x)
                sync()
                times.append((time.perf_counter() - start) / repeats)
    return [min(times) * 1e3 for times in samples]


def measure_frames(genotypes: dict[str, Genotype], tiles: list[tuple[int, int]], device: Device,
                   rounds: int = 7) -> dict[str, float]:
    """Milliseconds per frame (all its tiles, input sizes with context) of each folded network, measured whole:
    every network once per round, interleaved, and each one's fastest round."""
    keep_freed_memory()  # as the engine runs
    sync = torch.cuda.synchronize if device.kind == "cuda" else (lambda: None)
    nets = {name: fold(TriNet(g)).to(device.torch_device, device.dtype).eval().to(memory_format=torch.channels_last)
            for name, g in genotypes.items()}
    inputs = {name: [torch.rand(1, g.channels, h, w, device=device.torch_device, dtype=device.dtype)
                     .contiguous(memory_format=torch.channels_last) for h, w in tiles]
              for name, g in genotypes.items()}
    times: dict[str, list[float]] = {name: [] for name in nets}
    with torch.inference_mode():
        for name, net in nets.items():
            net(inputs[name][0])  # warm-up
        for _ in range(rounds):
            for name, net in nets.items():
                sync()
                start = time.perf_counter()
                for x in inputs[name]:
                    net(x)
                sync()
                times[name].append((time.perf_counter() - start) * 1e3)
    return {name: min(t) for name, t in times.items()}


def measure_frames_in_fresh_process(groups: list[tuple[dict[str, Genotype], list[tuple[int, int]]]],
                                    device: Device) -> dict[str, float]:
    """`measure_frames` for each (networks, tiles) group, all in one new process. Each process runs a
    network at its own speed (its memory layout, most likely): on our CPU two processes differed by 4% at the
    median and 14% at most, while two measurements within one process differed by about 1%, so a prediction
    checked against one process is checked no more closely than that spread, and a second process shows it."""
    jobs = [({name: g.to_dict() for name, g in networks.items()}, [tuple(t) for t in tiles]) for networks, tiles
            in groups]
    context = multiprocessing.get_context("spawn")  # a fresh interpreter, not a copy of this one's memory
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        parts = list(pool.map(_measure_specs, jobs, [device] * len(jobs)))
    return {name: ms for part in parts for name, ms in part.items()}


def _measure_specs(job: tuple[dict[str, dict], list[tuple[int, int]]], device: Device) -> dict[str, float]:
    specs, tiles = job
    if device.threads:
        torch.set_num_threads(device.threads)
    return measure_frames({name: Genotype.from_dict(spec) for name, spec in specs.items()}, tiles, device)


class LatencyTable:
    """Layer times for one device, read from and written to `<cache>/<device key>.json`."""

    def __init__(self, device: Device, cache: Path | None = None) -> None:
        self.device = device
        self.path = (cache or default_cache()) / f"{device.key}.json"
        self.entries: dict[str, float] = {}
        self.calibration: dict[str, float] | None = None  # FITTED: a scale per layer kind, then costs
        self.measured = 0  # layers timed by this object (the rest came from the file)
        self.reference: list[float] | None = None  # REFERENCE_LAYERS' times when the table was filled
        self.fit_check: dict | None = None  # how the last calibration predicted networks it had not seen
        if self.path.is_file():
            try:
                data = json.loads(read_bounded(self.path, MAX_TABLE_BYTES))
            except (OSError, ValueError):  # unreadable, damaged or over the bound: the table is timed afresh
                data = {}
            if isinstance(data, dict) and data.get("version") == TABLE_VERSION:
                self.entries = {str(k): float(v) for k, v in data.get("entries", {}).items()}
                calibration = data.get("calibration")
                if isinstance(calibration, dict) and set(calibration) == set(FITTED):
                    self.calibration = {str(k): float(v) for k, v in calibration.items()}
                reference = data.get("reference")
                if isinstance(reference, list) and len(reference) == len(REFERENCE_LAYERS):
                    self.reference = [float(v) for v in reference]

    def verify(self) -> str | None:
        """Time the reference layers and start the table afresh if they no longer run at the stored speed; the
        reason when it did. A table is kept per processor name, but two machines of one name need not run
        alike: a table filled on one session's Xeon put an x2 network at 213 ms that a later Xeon of the same
        name ran in 160 (its layers 17-28% faster). On a busy machine nothing is decided (the new times are
        the suspect ones); a table without a reference adopts today's, an idle machine's. A table is dropped
        only when a second timing agrees with the first: on session 17's Xeon a single timing put one table's
        reference layers at 1.38x and, minutes later, another's at 0.90x on the same idle machine."""
        now = self._time_layers(REFERENCE_LAYERS, min_seconds=0.1, rounds=7)
        idle = busy_warning() is None
        if self.reference and self.entries and idle:
            ratio = self._reference_ratio(now)
            if abs(ratio - 1.0) > STALE_TOLERANCE:  # once more: the nearer of the two decides
                again = self._time_layers(REFERENCE_LAYERS, min_seconds=0.1, rounds=7)
                ratio_again = self._reference_ratio(again)
                if abs(ratio_again - 1.0) < abs(ratio - 1.0):
                    now, ratio = again, ratio_again
            if abs(ratio - 1.0) > STALE_TOLERANCE:
                dropped = len(self.entries)
                self.entries, self.calibration, self.reference = {}, None, now
                return (f"the latency table's reference layers now take {ratio:.2f}x their stored time: this is not "
                        f"the machine that filled it, so its {dropped} layer times are measured again")
        if not self.reference and idle:  # kept otherwise: small drifts must not add up
            self.reference = now
        return None

    def _reference_ratio(self, now: list[float]) -> float:
        """The reference layers' times now over their stored times, the median of the three."""
        return float(np.median(np.array(now) / np.array(self.reference)))

    def layer_ms(self, layer: Layer) -> float:
        """The layer's cost in a whole network: its time alone, calibrated when the table is; the head (one
        per network call) also carries the calibration's cost of a call."""
        raw = self.raw_layer_ms(layer)
        if self.calibration is None:
            return raw
        c = self.calibration
        return (raw * c[layer.kind] + c[LAYER] + c[TRAFFIC] * layer.megabytes
                + (c[CALL] if layer.kind == "head" else 0.0))

    def raw_layer_ms(self, layer: Layer) -> float:
        """The layer's time when run alone (measured the first time it is asked for)."""
        self.fill([layer])
        return self.entries[layer.key]

    def fill(self, layers: Iterable[Layer]) -> None:
        """Time the layers the table lacks, interleaved (`time_modules`) in groups of up to FILL_GROUP layers
        and FILL_MEGABYTES of activations: ask for everything a prediction needs at once."""
        missing = list({layer.key: layer for layer in layers if layer.key not in self.entries}.values())
        if not missing:
            return
        group: list[Layer] = []
        for layer in missing:
            group.append(layer)
            if len(group) == FILL_GROUP or sum(g.megabytes for g in group) >= FILL_MEGABYTES:
                self._time(group)
                group = []
        if group:
            self._time(group)

    def _time(self, layers: list[Layer]) -> None:
        for layer, ms in zip(layers, self._time_layers(layers)):
            self.entries[layer.key] = ms
        self.measured += len(layers)

    def _time_layers(self, layers, **timing) -> list[float]:
        """The layers' milliseconds on this table's device and threads (`time_modules`), stored nowhere."""
        if self.device.threads and self.device.kind == "cpu":
            torch.set_num_threads(self.device.threads)
        items = [(*layer_module(layer), layer.height, layer.width) for layer in layers]
        return time_modules(items, self.device, **timing)

    def network_ms(self, genotype: Genotype, height: int, width: int) -> float:
        """Predicted milliseconds of one forward pass of the folded network on a height x width input."""
        layers = layers_of(genotype, height, width)
        self.fill(layers)
        return sum(self.layer_ms(layer) for layer in layers)

    def raw_frame_ms(self, genotype: Genotype, tiles: list[tuple[int, int]]) -> float:
        """`frame_ms` from the layers' times alone, whatever the calibration: what checks compare it to."""
        calibration, self.calibration = self.calibration, None
        try:
            return self.frame_ms(genotype, tiles)
        finally:
            self.calibration = calibration

    def frame_ms(self, genotype: Genotype, tiles: list[tuple[int, int]]) -> float:
        """Predicted milliseconds for a frame the engine cuts into tiles of these input sizes (with context)."""
        self.fill(layer for h, w in tiles for layer in layers_of(genotype, h, w))
        return sum(self.network_ms(genotype, h, w) for h, w in tiles)

    def features(self, genotype: Genotype, tiles: list[tuple[int, int]]) -> np.ndarray:
        """What a calibration weighs (FITTED, in order): the uncalibrated layer times of a frame summed per layer
        kind, the number of network calls, the number of layers run and the megabytes of activations moved."""
        sums = dict.fromkeys(LAYER_KINDS, 0.0)
        count, traffic = 0, 0.0
        self.fill(layer for h, w in tiles for layer in layers_of(genotype, h, w))
        for h, w in tiles:
            for layer in layers_of(genotype, h, w):
                sums[layer.kind] += self.raw_layer_ms(layer)
                count += 1
                traffic += layer.megabytes
        return np.array([sums[k] for k in LAYER_KINDS] + [len(tiles), count, traffic])

    def calibrate(self, networks: list[tuple[Genotype, list[tuple[int, int]]]],
                  measured: list[float] | None = None, pull: float = 1.0) -> list[float]:
        """Fit the calibration to these (network, frame tiles) pairs' frame times (measured here unless given;
        returned): a non-negative least-squares fit of measured time on `features`, each kind's scale pulled
        toward 1 and the layer and traffic costs toward 0 with the weight of `pull` networks; the call's cost
        is free.

        Networks of several scales and both tails fit best (a table serves every scale): refitted on stored
        frame times of x2 and x4 networks together, the cost of a layer run inside a network (0.03-0.07 ms on
        our 2-core CPU) brought x4 from 19 to 21 of 22 networks within 10%.
        Kinds whose times grow alike (head, tail, bicubic and adds all scale with the frame) cannot be told
        apart by the fit alone: unpulled, it set the head and the ReLUs to 0 and the adds to 2.9x, which a
        network of other proportions (x4) then pays for.

        The fit is kept only where it predicts networks it has not seen better than the raw sums do: each
        network is predicted by a fit to the others, and `fit_check` says how both did and which was kept."""
        if measured is None:  # networks cut into the same tiles are measured together, interleaved
            groups: dict[tuple, dict[str, Genotype]] = {}
            for i, (genotype, tiles) in enumerate(networks):
                groups.setdefault(tuple(tiles), {})[str(i)] = genotype
            frames: dict[str, float] = {}
            for tiles, group in groups.items():
                frames.update(measure_frames(group, list(tiles), self.device))
            measured = [frames[str(i)] for i in range(len(networks))]
        x = np.stack([self.features(g, tiles) for g, tiles in networks])
        y = np.asarray(measured, dtype=float)
        coef = _fit(x, y, pull)
        # Does the fit predict networks it has not seen better than the raw sums? Each network predicted by
        # the fit to the others (leave-one-out); where it does not, the sums are kept (an identity
        # calibration): on one session's Xeon the fit had made the checked networks worse (28 of 38 within
        # 10% against 32 raw).
        identity = np.array([1.0] * len(LAYER_KINDS) + [0.0] * (len(FITTED) - len(LAYER_KINDS)))
        raw = x @ identity
        unseen = (np.array([x[i] @ _fit(np.delete(x, i, 0), np.delete(y, i), pull) for i in range(len(y))])
                  if len(y) > 2 else raw)
        self.fit_check = {"networks": len(y), "raw_within": _within(raw, y), "fitted_within": _within(unseen, y),
                          "raw_error": _error(raw, y), "fitted_error": _error(unseen, y)}
        fitted = fit_pays(self.fit_check["fitted_error"], self.fit_check["raw_error"])
        self.fit_check["kept"] = "fitted" if fitted else "raw"
        self.calibration = dict(zip(FITTED, (float(c) for c in (coef if fitted else identity))))
        if fitted:  # a kind no network had keeps its own time
            used = {layer.kind for g, tiles in networks for layer in layers_of(g, *tiles[0])}
            self.calibration.update({kind: 1.0 for kind in LAYER_KINDS if kind not in used})
        return [float(v) for v in y]

    def save(self) -> None:
        """Write the table atomically (a temporary file, then a rename)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        data = {"version": TABLE_VERSION, "device": self.device.__dict__, "entries": self.entries,
                "calibration": self.calibration, "reference": self.reference}
        tmp.write_text(json.dumps(data, indent=0, sort_keys=True) + "\n")
        os.replace(tmp, self.path)


def _fit(x: np.ndarray, y: np.ndarray, pull: float) -> np.ndarray:
    """FITTED's coefficients: non-negative least squares of `y` on `x` in relative terms, with prior rows that
    pull each kind's scale toward 1 and the layer's and traffic's costs toward 0 (the call's cost is free)."""
    weights = 1.0 / y  # relative errors count alike for fast and slow networks
    kinds = len(LAYER_KINDS)
    prior = np.sqrt(pull) * np.delete(np.eye(len(FITTED)), FITTED.index(CALL), axis=0)
    target = np.sqrt(pull) * np.array([1.0] * kinds + [0.0, 0.0])
    coef, _ = nnls(np.vstack([x * weights[:, None], prior]), np.concatenate([y * weights, target]))
    return coef


def fit_pays(fitted_error: float, raw_error: float) -> bool:
    """Whether a calibration earns its place over the plain layer sums: its error on networks it has not seen
    must be clearly lower, by FIT_MARGIN, not merely lower. A tie is noise, and the sums have nothing fitted to
    it: on session 18's Zen 3 EPYC the fit won its own check by a hair (12.1% against 12.2%) and then put
    checked networks within 10% for 11 of 38 where the sums had 20. Where it paid, it paid by far (2.9-5.9%
    against 8.4-15.1%, at most 0.63 of the sums' error, in every stored check)."""
    return fitted_error < FIT_MARGIN * raw_error


def _within(predicted: np.ndarray, measured: np.ndarray, tolerance: float = 0.10) -> int:
    return int(np.sum(np.abs(predicted / measured - 1) <= tolerance))


def _error(predicted: np.ndarray, measured: np.ndarray) -> float:
    """The mean relative error, as |log| so that 2x too slow and 2x too fast weigh alike."""
    return float(np.mean(np.abs(np.log(predicted / measured))))


def calibrate_if_needed(table: LatencyTable, space: SearchSpace, tiles: list[tuple[int, int]],
                        log: Callable[[str], None] = print) -> None:
    """Calibrate a table before it holds a search or a pruning to a budget, once per device: raw layer sums
    were within 10% of measured frame times for 21 of 22 x2 networks but only 14 of 22 x4 ones (shuffle-tail
    networks ran up to 1.4x their sum), so a budget in milliseconds means measured milliseconds only once
    the table is fitted to whole networks. Times CALIBRATION_NETWORKS random networks of the space (seeded)
    over the frame's tiles, a minute or two, and keeps the fit in the table."""
    if table.calibration is not None:
        return
    rng = np.random.default_rng(0)
    started = time.monotonic()
    table.calibrate([(random_genotype(space, rng), tiles) for _ in range(CALIBRATION_NETWORKS)])
    kept = ("the fit" if table.fit_check["kept"] == "fitted"
            else "the layers' sums (the fit predicted networks it had not seen no better)")
    log(f"calibrated the latency table on {CALIBRATION_NETWORKS} random networks timed whole "
        f"({time.monotonic() - started:.0f} s, once per device); predictions use {kept}")
