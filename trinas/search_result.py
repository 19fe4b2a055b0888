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
from .search_state import Run
from .space import Genotype
from .sparsestmax import MAX_RADIUS


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
           command: str | None = None, log: Callable[[str], None] = print,
           limits: list[Limit] | None = None) -> SearchResult:
    """Measure the final network on the validation sets and write the model folder and the report."""
    from .export import save_model
    from .search_report import write_report

    net = run.net
    if net is None:  # a run stopped before its distributions were one-hot: take the leading architecture
        net, _ = derive(run.supernet, run.arch.weights(MAX_RADIUS).detach(), limits)
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
                   "budget_mode": config.budget_mode, "relaxation": config.relaxation,
                   **({"latency_ms": config.latency_ms, "latency_at": config.latency_at,
                       "latency_device": config.latency_device} if config.latency_ms else {}),
                   "arch_start": config.arch_start, "sparsemax_phase": config.sparsemax_phase,
                   "search_end": config.search_end,
                   "switched_at_step": next((r["step"] for r in run.history if r["phase"] == "train"), None)}
    save_model(net.cpu(), out, training={k: v for k, v in training.items() if v is not None}, metrics=metrics,
               searched=True, search=search_info)
    madds = madds_per_output_pixel(net.genotype)
    result = SearchResult(Path(out), net.genotype, count_params(net), madds, config.budget_madds, metrics,
                          run.step, run.elapsed_s, run.history, [])
    for cost, limit in limits or []:
        if cost(net.genotype) > limit * (1 + 1e-9):
            log(f"warning: the found network is over a budget ({cost(net.genotype):,.1f} against {limit:,.1f}); "
                "search longer or lower the budget")
    result.files = write_report(result)
    (Path(out) / "search-history.json").write_text(json.dumps(run.history, indent=1) + "\n")
    result.files.append("search-history.json")
    return result
