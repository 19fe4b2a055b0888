"""Train a genotype under one fixed schedule and score it: the unit of every fair comparison.

Two networks compared with `screen` got the same steps, batch, patch size, learning rate, data and seed:
the same batches in the same order and the same initialisation stream (or the same starting weights, a
schedule's `init`, when the comparison is between ways of training a model on). A run keeps a checkpoint and
writes its result when done, so a stopped comparison continues where it was and finished runs are never redone.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .cost import count_params, madds_per_output_pixel
from .data import Pair, PatchSampler, image_subset, list_images, make_pairs
from .distill import teach
from .evaluate import BenchmarkImage, load_benchmark, score, upscale_with
from .export import load_model
from .net import TriNet, unfold_into
from .space import Genotype
from .train import PRECISIONS, TrainConfig, train

RESULT = "result.json"


@dataclass(frozen=True)
class Schedule:
    steps: int = 4000
    batch: int = 16
    patch: int = 32  # LR patch side
    lr: float = 1e-3
    # The training recipe's optional parts (`trinas.train.TrainConfig`); off: plain L1 at one patch size.
    ema: float | None = None
    late_from: float = 0.8
    late_loss: str | None = None
    late_patch: int | None = None
    precision: str = "fp32"  # "bf16": the forward pass in bfloat16 autocast
    distill: float = 0.0  # the share of the loss that goes to `teacher`'s self-ensemble (`trinas.distill`)
    teacher: str | None = None  # the model folder whose self-ensemble is the second target
    init: str | None = None  # a model folder of the same network every run starts from; None: fresh weights

    def __post_init__(self) -> None:
        if self.distill and not self.teacher:
            raise ValueError("a schedule with distillation needs a teacher model")

    @property
    def largest_patch(self) -> int:
        return max(self.patch, self.late_patch or 0)


@dataclass
class ScreenData:
    pairs: list[Pair]
    val: list[BenchmarkImage]  # the set a choice may be made on (Set5)
    report: list[BenchmarkImage]  # the set that is only reported (Set14)


def load_screen_data(train_dirs: list[Path], val: Path, report: Path, scale: int, patch: int,
                     max_side: int | None = 2048, fraction: float = 1.0) -> ScreenData:
    """The training pairs (`fraction` of the images, `image_subset`) and both scored sets."""
    images = image_subset(list_images(train_dirs), fraction)
    return ScreenData(make_pairs(images, scale, patch, max_side), load_benchmark(val, scale),
                      load_benchmark(report, scale))


def screen(genotype: Genotype, seed: int, schedule: Schedule, data: ScreenData, folder: Path,
           extra: dict | None = None, device: str = "cpu") -> dict:
    """Train `genotype` with `seed` (from fresh weights, or from `schedule.init`'s), score it on both sets;
    `folder` keeps its checkpoint and result."""
    done = folder / RESULT
    if done.exists():
        return json.loads(done.read_text())
    config = TrainConfig(scale=genotype.scale, steps=schedule.steps, batch=schedule.batch, patch=schedule.patch,
                         lr=schedule.lr, seed=seed, val_every=schedule.steps, ema=schedule.ema,
                         late_from=schedule.late_from, late_loss=schedule.late_loss, late_patch=schedule.late_patch,
                         precision=schedule.precision, distill=schedule.distill)
    torch.manual_seed(seed)  # the same initialisation stream for every network of this seed
    model = TriNet(genotype)
    if schedule.init:
        unfold_into(model, load_model(Path(schedule.init)))  # refuses another network
    sampler = PatchSampler(data.pairs, genotype.scale, schedule.patch, seed)
    started = time.monotonic()
    state = train(model, sampler, [], config, folder / "checkpoint.pt", device=device, log=lambda line: None)
    model.eval()
    result = {**(extra or {}), "seed": seed, "genotype": genotype.to_dict(), "describe": genotype.describe(),
              "madds": madds_per_output_pixel(genotype), "params": count_params(model), "steps": state["step"],
              "schedule": asdict(schedule), "train_seconds": time.monotonic() - started}
    for key in ("val", "report"):
        result[key] = score(key, getattr(data, key), genotype.scale, upscale_with(model, device)).mean("psnr")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = done.with_name(RESULT + ".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(done)
    (folder / "checkpoint.pt").unlink(missing_ok=True)
    return result


class ScreenConflict(ValueError):
    """A run's folder holds a run of another network or schedule: resuming it would load the wrong weights, and
    reusing its result would report what was not asked for."""


def check_folder_holds(folder: Path, genotype: Genotype, schedule: Schedule | None = None) -> None:
    """Stamp `folder` with the genotype (and schedule) it trains, or refuse if a result or stamp there names
    another: a rerun with other --steps or another precision must not pick up results it did not ask for."""
    wanted = json.loads(json.dumps(genotype.to_dict()))
    stamp, done = folder / "genotype.json", folder / RESULT
    result = json.loads(done.read_text()) if done.exists() else None
    held = result["genotype"] if result else json.loads(stamp.read_text()) if stamp.exists() else None
    if held is not None and held != wanted:
        raise ScreenConflict(f"{folder} holds a run of another network ({Genotype.from_dict(held).describe()}); "
                             "remove it or choose another --out")
    folder.mkdir(parents=True, exist_ok=True)
    if held is None:
        stamp.write_text(json.dumps(wanted) + "\n")
    if schedule is None:
        return
    wanted_schedule, schedule_stamp = asdict(schedule), folder / "schedule.json"
    held_schedule = (result.get("schedule") if result
                     else json.loads(schedule_stamp.read_text()) if schedule_stamp.exists() else None)
    if held_schedule is not None:
        held_schedule = {**asdict(Schedule()), **held_schedule}  # recorded before a part existed: its default
        differs = [f"{k} {held_schedule[k]}, not {v}" for k, v in wanted_schedule.items() if held_schedule[k] != v]
        if differs:
            raise ScreenConflict(f"{folder} holds a run of another schedule ({'; '.join(differs)}); remove it or "
                                 "choose another --out")
    else:
        schedule_stamp.write_text(json.dumps(wanted_schedule) + "\n")


@dataclass(frozen=True)
class Task:
    genotype: Genotype
    seed: int
    folder: Path
    extra: dict | None = None


@dataclass(frozen=True)
class DataSpec:
    """What `load_screen_data` needs, so each worker process prepares the data once."""

    train_dirs: tuple[Path, ...]
    val: Path
    report: Path
    scale: int
    patch: int
    max_side: int | None = 2048
    fraction: float = 1.0  # of the training images (`benchmarks/data_scaling.py`)


_WORKER: dict = {}


def _start_worker(spec: DataSpec, schedule: Schedule, threads: int, device: str) -> None:
    torch.set_num_threads(threads)
    _WORKER["schedule"], _WORKER["device"] = schedule, device
    _WORKER["data"] = load_screen_data(list(spec.train_dirs), spec.val, spec.report, spec.scale, spec.patch,
                                       spec.max_side, spec.fraction)
    if schedule.distill:  # once per worker, before its first run
        teach(load_model(Path(schedule.teacher)), _WORKER["data"].pairs, device, schedule.precision,
              log=lambda line: None)


def _run_task(task: Task) -> dict:
    return screen(task.genotype, task.seed, _WORKER["schedule"], _WORKER["data"], task.folder, task.extra,
                  _WORKER["device"])


def screen_all(tasks: list[Task], spec: DataSpec, schedule: Schedule, jobs: int = 1, threads: int = 1,
               device: str = "cpu"):
    """Screen every task, `jobs` at a time in worker processes of `threads` threads; yields results as they
    finish (finished tasks at once, from their result files). Every folder is checked to hold its own
    network's run first (`check_folder_holds`), finished or not, before any work."""
    for task in tasks:  # before any work: no folder may hold another network's run
        check_folder_holds(task.folder, task.genotype, schedule)
    pending = [t for t in tasks if not (t.folder / RESULT).exists()]
    for task in tasks:
        if task not in pending:
            yield json.loads((task.folder / RESULT).read_text())
    if not pending:
        return
    context = multiprocessing.get_context("spawn")  # fresh processes: no torch thread pools forked
    with context.Pool(min(jobs, len(pending)), initializer=_start_worker,
                      initargs=(spec, schedule, threads, device)) as pool:
        yield from pool.imap_unordered(_run_task, pending)


def screen_all_or_exit(tasks: list[Task], spec: DataSpec, schedule: Schedule, jobs: int = 1, threads: int = 1,
                       device: str = "cpu"):
    """`screen_all` for the benchmark commands: a folder of another network is one line and exit 1."""
    try:
        yield from screen_all(tasks, spec, schedule, jobs, threads, device)
    except ScreenConflict as exc:
        raise SystemExit(f"error: {exc}") from None


def seed_summary(results: list[dict]) -> dict:
    """Per scored set ("val", "report"): the values over seeds, their mean and their sample spread (None with
    fewer than two seeds)."""
    row: dict = {}
    for key in ("val", "report"):
        values = [r[key] for r in results]
        row[key] = values
        row[f"{key}_mean"] = float(np.mean(values)) if values else None
        row[f"{key}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return row


def mean_and_spread(row: dict, key: str) -> str:
    """"36.62 ± 0.02" (or "-" before any seed finished)."""
    if row[f"{key}_mean"] is None:
        return "-"
    spread = f" ± {row[f'{key}_std']:.2f}" if row[f"{key}_std"] is not None else ""
    return f"{row[f'{key}_mean']:.2f}{spread}"


def add_screen_arguments(parser: argparse.ArgumentParser, steps: int = 4000) -> None:
    """The options every comparison script shares: data, output, seeds, the schedule and the workers."""
    parser.add_argument("--train", type=Path, nargs="+", required=True, help="HR training image folders")
    parser.add_argument("--val", type=Path, required=True, help="the set a choice may be made on (Set5)")
    parser.add_argument("--report", type=Path, required=True, help="the set that is only reported (Set14)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=32, help="LR patch side")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="of every run: bf16 is 2-3x faster on a CPU with AMX and was as good at equal steps "
                             "(the recipe ablation's bf16 arm)")
    parser.add_argument("--jobs", type=int, default=1, help="networks trained at once")
    parser.add_argument("--threads", type=int, default=1, help="threads per job")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N: where each job trains (the same "
                                                         "code; a GPU runs several jobs at once with --jobs)")
