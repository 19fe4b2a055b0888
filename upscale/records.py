"""Measured figures written back into a local model folder (`--record`): config.json, and the card made from it.

A figure lands in the folder only through here, with the command that measured it, so a card never shows a
number that no command reproduces.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any, Callable

import torch

from .errors import UpscaleError
from .models import HUB_PREFIX, resolve

# A rerun of the same measurement on the same machine and day replaces it; another machine's figure is kept
# (machines of one name differ: the first `trinas-x4-rt` made 27.7 frames/s on one "AMD EPYC" and 12.4 on another).
SPEED_KEY = ("how", "device", "device_name", "precision", "threads", "input", "date")


def update_config(spec: str, change: Callable[[dict[str, Any]], None]) -> Path:
    """Apply `change` to the model's config.json and regenerate its card; only local folders and packaged
    models (a Hub snapshot is the cache's copy of someone's repository, not ours to edit)."""
    from trinas.export import read_config, write_config

    check_recordable(spec)
    folder = resolve(spec)
    config = read_config(folder)
    change(config)
    write_config(folder, config)
    return folder


def check_recordable(spec: str | None) -> None:
    """Refuse before any work is done what `update_config` would refuse after it."""
    if spec and spec.startswith(HUB_PREFIX):
        raise UpscaleError(f"--record writes into a model folder, and {spec} is the Hugging Face cache's copy of "
                           f"a repository: copy that folder somewhere of your own and pass it to --model")


def record_metrics(spec: str, means: dict, tta: bool = False) -> Path:
    """`upscale eval --record`: the means per data set; self-ensemble figures go to `metrics_tta`."""
    kept = {name: {k: v for k, v in m.items() if k != "seconds_per_image"} for name, m in means.items()}
    return update_config(spec, lambda config: config.__setitem__("metrics_tta" if tta else "metrics", kept))


def device_name(device: torch.device) -> str:
    """What ran it, in words a reader can compare with their own machine."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    from trinas.latency import cpu_name

    return f"{cpu_name()}, {torch.get_num_threads()} threads"


def speed_entry(how: str, device: torch.device, precision: str, input_size: str, output_size: str,
                ms_per_frame: float, command: str, **extra: Any) -> dict[str, Any]:
    return {"how": how, "device": device.type, "device_name": device_name(device), "precision": precision,
            "threads": torch.get_num_threads() if device.type == "cpu" else None, "input": input_size,
            "output": output_size, "ms_per_frame": round(ms_per_frame, 2), "fps": round(1000 / ms_per_frame, 2),
            "date": datetime.date.today().isoformat(), "command": command, **extra}


def record_speed(spec: str, entry: dict[str, Any]) -> Path:
    """Keep the entry in config["speed"], replacing an earlier one of the same measurement."""
    def change(config: dict[str, Any]) -> None:
        same = tuple(entry.get(k) for k in SPEED_KEY)
        kept = [e for e in config.get("speed", []) if tuple(e.get(k) for k in SPEED_KEY) != same]
        config["speed"] = kept + [entry]

    return update_config(spec, change)
