"""The end of a search: measure the final network, write the model folder, its report and its history."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .cost import count_params, madds_per_output_pixel
from .derive import Limit, derive
from .evaluate import score, upscale_with
from .search_data import SearchData
from .search_config import SearchConfig
from .search_state import Run
from .space import Genotype
from .sparsestmax import MAX_RADIUS


@dataclass
class PredictedTime:
    """A latency-budgeted search's network: its predicted time per output frame and the budget it was held to."""
    ms: float
    budget_ms: float
    at: str  # the output frame, "1280x720"
    device: str

    @classmethod
    def under(cls, config: SearchConfig, ms: float) -> "PredictedTime":
        return cls(round(ms, 2), config.latency_ms, config.latency_at, config.latency_device)


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
    latency: PredictedTime | None = None  # with a latency budget


def measure(net, data: SearchData, scale: int, device: torch.device | str = "cpu") -> dict[str, dict[str, float]]:
    """The means a model folder records, for each validation set: PSNR/SSIM of the network and of bicubic."""
    metrics = {}
    for name, images in data.val.items():
        result = score(name, images, scale, upscale_with(net, device))
        metrics[name] = {key: result.mean(key) for key in ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim")}
    return metrics


def finish(run: Run, data: SearchData, out: Path, train_dirs: list[Path], device: str = "auto",
           command: str | None = None, log: Callable[[str], None] = print,
           limits: list[Limit] | None = None, latency_of: Callable[[Genotype], float] | None = None
           ) -> SearchResult:
    """Measure the final network on the validation sets and write the model folder and the report;
    `latency_of`: the latency budget's prediction of a network, recorded for the one found."""
    from .export import save_model, write_config
    from .search_report import write_report

    net = run.net
    if net is None:  # a run stopped before its distributions were one-hot: take the leading architecture
        net, _ = derive(run.supernet, run.arch.weights(MAX_RADIUS).detach(), limits)
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    net = net.to(dev).eval()
    metrics = measure(net, data, run.config.scale, dev)
    config = run.config
    training = {"data": [Path(d).name for d in train_dirs], "steps": run.step,
                "batch": config.batch, "patch": config.patch, "loss": "L1 (+ cost and order terms while searching)",
                "optimizer": "Adam, cosine lr; architecture: Adam", "lr": config.lr, "seed": config.seed,
                "seconds": round(run.elapsed_s, 1)}
    if command:
        training["command"] = command
    search_info = {"space": config.space.to_dict(), "budget_madds": config.budget_madds,
                   "budget_mode": config.budget_mode, "relaxation": config.relaxation,
                   "depth_finish": config.depth_finish, "budget_gradient": config.budget_gradient,
                   "budget_penalty": config.budget_penalty,
                   **({"latency_ms": config.latency_ms, "latency_at": config.latency_at,
                       "latency_device": config.latency_device} if config.latency_ms else {}),
                   "arch_start": config.arch_start, "sparsemax_phase": config.sparsemax_phase,
                   "search_end": config.search_end,
                   "switched_at_step": next((r["step"] for r in run.history if r["phase"] == "train"), None)}
    latency = None
    if config.latency_ms and latency_of is not None:
        latency = PredictedTime.under(config, latency_of(net.genotype))
        search_info["predicted_latency_ms"] = latency.ms
    written = save_model(net.cpu(), out, training={k: v for k, v in training.items() if v is not None},
                         metrics=metrics, searched=True, search=search_info)
    madds = madds_per_output_pixel(net.genotype)
    result = SearchResult(Path(out), net.genotype, count_params(net), madds, config.budget_madds, metrics,
                          run.step, run.elapsed_s, run.history, [], latency)
    for cost, limit in limits or []:
        if cost(net.genotype) > limit * (1 + 1e-9):
            log(f"warning: the found network is over a budget ({cost(net.genotype):,.1f} against {limit:,.1f}); "
                "search longer or lower the budget")
    result.files = write_report(result)
    write_config(Path(out), written)  # the card now shows the curves the report drew
    (Path(out) / "search-history.json").write_text(json.dumps(run.history, indent=1) + "\n")
    result.files.append("search-history.json")
    return result


def prune_found(result: SearchResult, data: SearchData, train_dirs: list[Path], config: SearchConfig,
                log: Callable[[str], None] = print) -> SearchResult:
    """The pruning search after the architecture search: prune the found network to the latency budget,
    fine-tune, measure, and make it the model folder (the unpruned one moves to `unpruned/`)."""
    import shutil

    from .export import MODEL_FILES, load_model, pictures_in, read_config, save_model
    from .prune import prune_for_frame
    from .search_config import frame_size

    out = Path(result.out)
    found = load_model(out)
    record = read_config(out)
    (out / "unpruned").mkdir(exist_ok=True)
    for name in (*MODEL_FILES, *pictures_in(out)):
        shutil.copy2(out / name, out / "unpruned" / name)
    pruned = prune_for_frame(found, train_dirs, config.latency_ms, frame_size(config.latency_at),
                             config.latency_device, config.latency_threads, config.latency_tile,
                             fine_tune_steps=config.prune_steps, batch=config.batch, patch=config.patch,
                             seed=config.seed, checkpoint=out / ".prune-checkpoint.pt",
                             step=config.prune_channel_step, log=log)
    (out / ".prune-checkpoint.pt").unlink(missing_ok=True)
    net = pruned.net.eval()
    metrics = measure(net, data, config.scale)
    training = {**record["training"], "pruned": {**pruned.record(), "unpruned": found.genotype.describe()}}
    save_model(net.cpu(), out, training=training, metrics=metrics, searched=True, search=record.get("search", {}))
    log(f"pruned to {net.genotype.describe()}: {pruned.after_ms:,.1f} ms predicted per {config.latency_at} frame "
        f"(was {pruned.before_ms:,.1f}); the unpruned network is in {out / 'unpruned'}")
    result.genotype, result.params = net.genotype, count_params(net)
    result.madds_per_output_pixel, result.metrics = madds_per_output_pixel(net.genotype), metrics
    result.latency = PredictedTime.under(config, pruned.after_ms)
    return result
