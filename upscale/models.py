"""Model specs -> loaded TriNets: a packaged name (`trinas-x2`), a model folder, or `hf:owner/repo[@rev]`.

Packaged models live in the installed `weights/` folder (one Hub-style repository per model), so they load
offline from any directory.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from trinas.export import ModelFormatError, load_model, read_config
from trinas.net import TriNet

from .errors import UpscaleError

HUB_PREFIX = "hf:"


class ModelNotFound(UpscaleError, LookupError):
    """The spec names no model we can find; the message lists what is available."""


def weights_root() -> Path:
    """Where the packaged model folders are, in an installed copy or in a source checkout."""
    try:
        root = Path(str(resources.files("upscale.weights")))
        if root.is_dir():
            return root
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parent.parent / "weights"


def packaged_models() -> dict[str, Path]:
    """Packaged model name -> folder, for every folder in weights/ that holds a config.json."""
    root = weights_root()
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir()) if (p / "config.json").is_file()}


def packaged_for_scale(scale: int) -> str:
    """The packaged model for a scale factor: a searched one where we ship one (it beats the baseline),
    else the baseline; or a clear error listing the scales we ship."""
    configs = {name: read_config(folder) for name, folder in packaged_models().items()}
    fitting = [name for name, config in configs.items() if config["scale"] == scale]
    if fitting:
        return min(fitting, key=lambda name: not configs[name].get("searched", False))  # searched first
    scales = sorted({config["scale"] for config in configs.values()})
    raise ModelNotFound(f"no packaged model for x{scale} (packaged: {', '.join(f'x{s}' for s in scales)}); "
                        f"use --model with a folder or hf: spec, or --outscale {scale} with a packaged model")


def packaged_for_factor(factor: float) -> int:
    """The packaged scale that reaches an output factor best: the smallest one at least as large (the model
    then shrinks a little, which loses nothing), else the largest (then a resize enlarges the rest)."""
    scales = sorted({read_config(folder)["scale"] for folder in packaged_models().values()})
    if not scales:
        raise ModelNotFound("no packaged models are installed; use --model with a folder or hf: spec")
    return next((s for s in scales if s >= factor - 1e-9), scales[-1])


def resolve(spec: str) -> Path:
    """The local folder holding the model `spec` names."""
    if spec.startswith(HUB_PREFIX):
        from .hub import fetch  # huggingface_hub is imported only when the Hub is asked for

        return fetch(spec[len(HUB_PREFIX):])
    packaged = packaged_models()
    if spec in packaged:
        return packaged[spec]
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise ModelNotFound(f"{spec} is a file; a model is a folder with config.json and model.safetensors")
    names = ", ".join(packaged) or "none"
    raise ModelNotFound(f"unknown model {spec!r}: not a packaged name ({names}), a folder, or hf:owner/repo")


def load(spec: str) -> TriNet:
    """Resolve and load a model spec; errors are ModelNotFound or ModelFormatError with one-line messages."""
    return load_model(resolve(spec))


__all__ = ["ModelFormatError", "ModelNotFound", "load", "resolve", "packaged_models", "packaged_for_factor",
           "packaged_for_scale"]
