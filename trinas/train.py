"""Train a TriNet on LR/HR patches: Adam, cosine learning rate, checkpoints and exact resume, and a recipe
whose parts are each switched on only where a measurement says they pay (`benchmarks/recipe_ablation.py`):

- `ema`: an exponential moving average of the weights, validated and exported instead of the raw weights;
- `late_loss` from `late_from`: L1 first, then L2 or Charbonnier for the end of the run;
- `late_patch` from `late_from`: larger patches for the end of the run;
- `distill`: a teacher's self-ensemble outputs as a second target, mixed into the loss with this weight
  (`trinas.distill`; the pairs carry them);
- `precision` "bf16": the forward pass in bfloat16 autocast (weights, optimiser and loss stay fp32). On a CPU
  with AMX it made a training step 2.4x as fast (`benchmarks/training_step.py --precisions fp32 bf16`).

A batch is a pure function of (seed, step) and the checkpoint holds the model, its average, the optimiser
and the step, so a run killed at any moment resumes where its last checkpoint left it and ends with the
same result. The validation curve is kept, and `saturation` says whether the last fifth of the run still
gained. Same code on CPU and GPU.

    python -m trinas.train --scale 2 --train DIR... --val DIR --work runs/x2 --steps 20000 --out weights/x
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from .allocator import keep_freed_memory
from .checkpoint import load_checkpoint, save_checkpoint
from .data import PatchSampler, list_images, make_pairs
from .distill import distillation_loss, teach
from .evaluate import BenchmarkImage, load_benchmark, score, upscale_with
from .net import TRAIN_LAYOUT, TriNet, unfold_into
from .space import Genotype, baseline_genotype


@dataclass
class TrainConfig:
    scale: int
    steps: int = 20000
    batch: int = 16
    patch: int = 48
    lr: float = 1e-3
    min_lr: float = 1e-5
    warmup: int = 200
    seed: int = 0
    val_every: int = 500
    checkpoint_every_s: float = 120.0
    ema: float | None = None          # decay of the weight average (e.g. 0.999); None: no average
    late_from: float = 0.8            # fraction of the run after which the late loss and patch apply
    late_loss: str | None = None      # "l2" or "charbonnier" after late_from; None: L1 throughout
    late_patch: int | None = None     # LR patch side after late_from; None: `patch` throughout
    precision: str = "fp32"           # "bf16": the forward pass in bfloat16 autocast
    distill: float = 0.0              # weight of the teacher's outputs in the loss (0: the HR images alone)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown training precision {self.precision!r}; use {' or '.join(PRECISIONS)}")
        if self.ema is not None and not 0 < self.ema < 1:
            raise ValueError(f"ema decay must be in (0, 1), got {self.ema}")
        if self.late_loss not in (None, *LOSSES):
            raise ValueError(f"unknown late loss {self.late_loss!r}; use one of {', '.join(LOSSES)}")
        if not 0 <= self.distill <= 1:
            raise ValueError(f"the distillation weight is a share of the loss in [0, 1], got {self.distill}")
        if not 0 < self.late_from <= 1:
            raise ValueError(f"late_from is a fraction of the run, got {self.late_from}")

    def late(self, step: int) -> bool:
        return step >= self.late_from * self.steps

    def patch_at(self, step: int) -> int:
        return self.late_patch if self.late_patch and self.late(step) else self.patch

    def loss_at(self, step: int) -> str:
        return self.late_loss if self.late_loss and self.late(step) else "l1"


def charbonnier(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    return torch.sqrt((x - y) ** 2 + eps * eps).mean()


LOSSES = {"l1": F.l1_loss, "l2": F.mse_loss, "charbonnier": charbonnier}
PRECISIONS = ("fp32", "bf16")
MAX_GENOTYPE_BYTES = 1 << 20  # a genotype's JSON is a few hundred bytes


def forward_in(model: torch.nn.Module, x: torch.Tensor, precision: str) -> torch.Tensor:
    """The model's output in fp32, its forward pass run in `precision` (bf16: autocast on x's device)."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        return model(x).float()


class WeightAverage:
    """An exponential moving average of a model's parameters (and a copy of its buffers), kept beside it."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        # Early on the average follows closely (decay ramps up), so it is not stuck near the initial weights.
        decay = min(self.decay, (1 + step) / (10 + step))
        for avg, p in zip(self.model.parameters(), model.parameters()):
            avg.lerp_(p.detach(), 1 - decay)
        for avg, b in zip(self.model.buffers(), model.buffers()):
            avg.copy_(b)


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay from `lr` to `min_lr` over the run."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    t = (step - config.warmup) / max(1, config.steps - config.warmup)
    return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1 + math.cos(math.pi * min(1.0, t)))


def validate(model: TriNet, val: list[BenchmarkImage], scale: int, device: torch.device) -> float:
    model.eval()
    try:
        return score("val", val, scale, upscale_with(model, device)).mean("psnr")
    finally:
        model.train()


def saturation(history: list[dict], key: str = "val_psnr", tail: float = 0.2) -> float | None:
    """dB gained over the last `tail` of the run's steps (None before two validations span it): a run whose
    last fifth gains under 0.02 dB has stopped improving."""
    rows = [r for r in history if r.get(key) == r.get(key) and r.get(key) is not None]  # drop NaN
    if len(rows) < 2:
        return None
    last = rows[-1]["step"]
    before = [r for r in rows if r["step"] <= last * (1 - tail)]
    return None if not before else rows[-1][key] - before[-1][key]


def train(model: TriNet, sampler: PatchSampler, val: list[BenchmarkImage], config: TrainConfig,
          checkpoint: Path, device: torch.device | str = "cpu", time_budget_s: float | None = None,
          log: Callable[[str], None] = print) -> dict:
    """Train until `config.steps` (or the time budget runs out; rerun to continue). Returns the run state;
    `model` ends holding the weights to export (the average, with `ema`)."""
    device = torch.device(device)
    keep_freed_memory()
    torch.manual_seed(config.seed)
    model.to(device, memory_format=TRAIN_LAYOUT).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    average = WeightAverage(model, config.ema) if config.ema else None
    state = load_checkpoint(checkpoint)
    history: list[dict] = []
    step = 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if average is not None and state.get("average") is not None:
            average.model.load_state_dict(state["average"])
        step, history = int(state["step"]), list(state["history"])
        log(f"resumed from {checkpoint} at step {step}")

    def save() -> None:
        save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                         "average": average.model.state_dict() if average is not None else None,
                         "history": history, "config": asdict(config)}, checkpoint)

    started = last_save = time.monotonic()
    running, counted = 0.0, 0  # the loss summed since the last validation, over `counted` steps of this sitting
    while step < config.steps:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step)
        loss_fn = LOSSES[config.loss_at(step)]
        patch = config.patch_at(step)
        lr_batch, hr_batch, target = (sampler.batch_with_targets(step, config.batch, patch) if config.distill
                                      else (*sampler.batch(step, config.batch, patch), None))
        output = forward_in(model, lr_batch.to(device, memory_format=TRAIN_LAYOUT), config.precision)
        hr_batch = hr_batch.to(device)
        loss = (distillation_loss(loss_fn, output, hr_batch, target.to(device), config.distill) if config.distill
                else loss_fn(output, hr_batch))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if average is not None:
            average.update(model, step)
        running += loss.item()
        counted += 1
        step += 1
        if step % config.val_every == 0 or step == config.steps:
            judged = average.model if average is not None else model
            val_psnr = validate(judged, val, config.scale, device) if val else None  # None: JSON has no NaN
            mean_loss = running / counted  # a resumed run counts only the steps it ran itself
            history.append({"step": step, "loss": mean_loss, "val_psnr": val_psnr,
                            "seconds": time.monotonic() - started})
            log(f"step {step}/{config.steps} loss {mean_loss:.4f}"
                + (f" val {val_psnr:.2f} dB" if val_psnr is not None else ""))
            running, counted = 0.0, 0
        now = time.monotonic()
        if now - last_save > config.checkpoint_every_s:
            save()
            last_save = now
        if time_budget_s is not None and now - started > time_budget_s:
            log(f"time budget reached at step {step}; rerun to resume")
            break
    save()
    if average is not None:
        model.load_state_dict(average.model.state_dict())
    return {"step": step, "history": history, "done": step >= config.steps, "saturation": saturation(history)}


def write_model(model: TriNet, out: Path, training: dict, **extra) -> None:
    """The model folder, its training curve beside it first, so the card is written once and shows it."""
    from .export import save_model
    from .search_report import draw_training_curve

    out.mkdir(parents=True, exist_ok=True)
    draw_training_curve(training["history"], out / "curves.png")
    save_model(model, out, training=training, **extra)


def started_from(folder: Path, genotype: Genotype) -> tuple[dict, list[dict]]:
    """What a run started from a model folder (`--init`) carries over, so its card still says how the network
    was made: the commands before this one (search, pruning, earlier training), which go under
    `training.before`, and, for the same network, the config keys saying how it was made (searched, and with
    what settings, or chosen by hand from another model's parts). Another network only took some of its
    weights: it was not found by that search, and its config names the model it started from instead
    (`derived_from`), or, if that one was itself grown from another, the model at the start of the chain (the
    runs between are in `training.before`): a card must name a model its reader can find, not a work folder."""
    from .export import PROVENANCE, ModelConfig, read_config

    source = read_config(folder)
    earlier = source.get("training", {})
    before = [*earlier.get("before", []),
              {k: v for k, v in earlier.items() if k in ("command", "steps", "pruned")}]
    if ModelConfig.of(source, str(folder)).genotype == genotype:
        carried = {k: source[k] for k in PROVENANCE if k in source}
    else:
        carried = {"derived_from": str(source.get("derived_from") or source.get("name") or Path(folder).name)}
    return carried, [b for b in before if b]


def genotype_of(path: Path) -> Genotype:
    """The network of --genotype: a model folder's, or a genotype's JSON file (read only up to a bound)."""
    from .export import ModelConfig, read_config
    from .files import read_bounded

    if path.is_dir():
        return ModelConfig.of(read_config(path), str(path)).genotype
    return Genotype.from_dict(json.loads(read_bounded(path, MAX_GENOTYPE_BYTES)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, required=True)
    parser.add_argument("--train", nargs="+", required=True, help="HR image folders")
    parser.add_argument("--val", nargs="*", default=[], help="HR validation folders")
    parser.add_argument("--work", type=Path, required=True, help="folder for the checkpoint")
    parser.add_argument("--out", type=Path, help="model folder to write when training is done")
    parser.add_argument("--genotype", type=Path, help="genotype JSON or model folder (default: the baseline)")
    parser.add_argument("--init", type=Path, help="model folder whose matching weights start the run")
    parser.add_argument("--design", help="how a hand-chosen --genotype was chosen, one sentence for the card")
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=48)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ema", type=float, help="weight average decay, e.g. 0.999 [default: none]")
    parser.add_argument("--late-from", type=float, default=0.8, help="fraction of the run where 'late' starts")
    parser.add_argument("--late-loss", choices=sorted(LOSSES), help="loss after --late-from [default: L1 throughout]")
    parser.add_argument("--late-patch", type=int, help="LR patch side after --late-from [default: --patch]")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="bf16: the forward pass in bfloat16 autocast, 2.4x as fast on a CPU with AMX "
                             "(measure: benchmarks/training_step.py)")
    parser.add_argument("--teacher", type=Path, metavar="MODEL",
                        help="a model folder of the same scale whose self-ensemble (8 flips and rotations) is a "
                             "second target, made once over the training images (trinas.distill)")
    parser.add_argument("--distill", type=float, metavar="WEIGHT",
                        help="the teacher's share of the loss, in (0, 1] [default with --teacher: 0.5]")
    parser.add_argument("--val-every", type=int, default=500)
    parser.add_argument("--max-side", type=int, default=2048)
    parser.add_argument("--time-budget", type=float, help="seconds before stopping (resumable)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--export-only", action="store_true",
                        help="write --out from the checkpoint as it is now, without training")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from .export import load_model, read_config  # local: keeps the library import light

    try:
        genotype = genotype_of(args.genotype) if args.genotype else baseline_genotype(args.scale)
    except (OSError, ValueError) as exc:  # missing, too large, not JSON, not a genotype or a model: one line
        parser.error(f"--genotype {args.genotype}: {exc}")
    model = TriNet(genotype)
    carried, before = started_from(args.init, genotype) if args.init else ({}, [])
    if args.design:
        carried["design"] = args.design
    if args.init and not (args.work / "checkpoint.pt").exists():
        source = load_model(args.init)
        if source.genotype == genotype:  # the same network: continue from it exactly, every branch alive
            unfold_into(model, source)
            print(f"initialised from {args.init} (the same network)")
        else:
            own, state = model.state_dict(), source.state_dict()
            matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
            model.load_state_dict(matched, strict=False)
            print(f"initialised {len(matched)}/{len(own)} tensors from {args.init}")
    if args.distill is not None and not args.teacher:
        parser.error("--distill needs --teacher MODEL")
    distill = (0.5 if args.distill is None else args.distill) if args.teacher else 0.0
    if args.teacher and not 0 < distill <= 1:
        parser.error(f"--distill is the teacher's share of the loss, in (0, 1]; got {distill}")
    teacher = load_model(args.teacher) if args.teacher else None
    if teacher is not None and teacher.genotype.scale != args.scale:
        parser.error(f"the teacher {args.teacher} is a x{teacher.genotype.scale} model, not x{args.scale}")
    config = TrainConfig(scale=args.scale, steps=args.steps, batch=args.batch, patch=args.patch, lr=args.lr,
                         seed=args.seed, val_every=args.val_every, ema=args.ema, late_from=args.late_from,
                         late_loss=args.late_loss, late_patch=args.late_patch, precision=args.precision,
                         distill=distill)
    late = f" from {config.late_from:g} of the run" if config.late_loss or config.late_patch else ""
    training = {"data": list(args.train), "steps": config.steps, "batch": config.batch,
                "patch": config.patch if not config.late_patch else f"{config.patch}, {config.late_patch}{late}",
                "loss": "L1" if not config.late_loss else f"L1, {config.late_loss}{late}",
                "optimizer": "Adam, cosine lr" + (f", weight average {config.ema:g}" if config.ema else ""),
                "lr": config.lr, "seed": config.seed,
                **({"precision": "bf16 autocast (fp32 weights)"} if config.precision == "bf16" else {}),
                **({"teacher": f"the self-ensemble of {read_config(args.teacher).get('name') or args.teacher.name}"
                               f" (8 flips and rotations), {config.distill:g} of the loss"} if teacher else {}),
                "command": "python -m trinas.train " + shlex.join(a for a in argv if a != "--export-only"),
                **({"before": before} if args.init else {})}
    if args.export_only:
        state = load_checkpoint(args.work / "checkpoint.pt")
        if state is None or args.out is None:
            parser.error("--export-only needs --out and a checkpoint in --work")
        model.load_state_dict(state["average"] if state.get("average") is not None else state["model"])
        training.update(steps=int(state["step"]), history=state["history"])
        if (gained := saturation(state["history"])) is not None:
            training["last_fifth_gain_db"] = round(gained, 4)
        write_model(model, args.out, training, **carried)
        print(f"wrote {args.out} from the checkpoint at step {state['step']}")
        return
    t0 = time.monotonic()
    pairs = make_pairs(list_images(args.train), args.scale, max(args.patch, args.late_patch or 0), args.max_side)
    val = [img for folder in args.val for img in load_benchmark(Path(folder), args.scale)]
    print(f"{len(pairs)} training images, {len(val)} validation images, prepared in {time.monotonic() - t0:.0f}s")
    if teacher is not None:
        teach(teacher, pairs, args.device, config.precision)
    result = train(model, PatchSampler(pairs, args.scale, args.patch, args.seed), val, config,
                   args.work / "checkpoint.pt", args.device, args.time_budget)
    gained = result["saturation"]
    if gained is not None:
        print(f"the last fifth of the run gained {gained:+.3f} dB on the validation set"
              f"{' (saturated: under 0.02 dB)' if gained < 0.02 else ''}")
    if result["done"] and args.out:
        training["history"] = result["history"]
        if gained is not None:
            training["last_fifth_gain_db"] = round(gained, 4)
        write_model(model.cpu(), args.out, training, **carried)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
