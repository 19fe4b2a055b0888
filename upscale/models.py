"""Model specs -> loaded TriNets: a packaged name (`trinas-x2`), a model folder, or `hf:owner/repo[@rev]`.

Packaged models live in the installed `weights/` folder (one Hub-style repository per model), so they load
offline from any directory. This module also lists and describes models (packaged, cached from the Hub, or
folders); `upscale.hub` only moves files and checks them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from trinas.export import MAX_CARD_BYTES, ModelConfig, ModelFormatError, load_model, read_config
from trinas.files import read_bounded
from trinas.net import TriNet

from .errors import UpscaleError

HUB_PREFIX = "hf:"
VALIDATION_SET = "Set5"  # the set models are chosen on; Set14 is only reported


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
    """The packaged model for a scale factor: the one that scores best on the validation set (Set5, as its
    config records it), so a faster model never becomes the default by being newer or searched; without
    recorded figures, a searched one before the baseline. Or a clear error listing the scales we ship."""
    configs = {name: read_config(folder) for name, folder in packaged_models().items()}
    best = _best_for_scale(configs, scale)
    if best is not None:
        return best
    scales = sorted({config["scale"] for config in configs.values()})
    raise ModelNotFound(f"no packaged model for x{scale} (packaged: {', '.join(f'x{s}' for s in scales)}); "
                        f"use --model with a folder or hf: spec, or --outscale {scale} with a packaged model")


def _best_for_scale(configs: dict[str, dict], scale: int) -> str | None:
    """Of the named configs, the one `packaged_for_scale` picks for the scale, or None if none has it."""
    fitting = [name for name, config in configs.items() if config["scale"] == scale]
    if not fitting:
        return None
    return max(fitting, key=lambda name: (_validation_psnr(configs[name]), bool(configs[name].get("searched"))))


def _validation_psnr(config: dict) -> float:
    """The Set5 PSNR a config records (`upscale eval --record`), or -inf where none is recorded."""
    try:
        return float(config["metrics"][VALIDATION_SET]["psnr"])
    except (KeyError, TypeError, ValueError):
        return float("-inf")


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


@dataclass(frozen=True)
class LoadedModel:
    """A loaded model as the engine and the video pipeline see it: the network and what its config says,
    with the facts they rely on asked of it here, in one place (spandrel-style; no getattr defaults)."""

    module: TriNet
    config: ModelConfig

    @classmethod
    def of(cls, module: TriNet) -> "LoadedModel":
        """A bare TriNet (from the Python API or a test): its config is the one it was loaded with, if any."""
        if isinstance(module, LoadedModel):
            return module
        config = getattr(module, "config", None)
        if not isinstance(config, ModelConfig):
            config = ModelConfig(module.genotype, "model", {"name": "model"})
        return cls(module, config)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def scale(self) -> int:
        return self.config.scale

    @property
    def channels(self) -> int:
        return self.config.channels

    @property
    def receptive_field(self) -> int:
        return self.module.receptive_field

    @property
    def supports_half(self) -> bool:
        return self.module.supports_half

    @property
    def peak_floats_per_pixel(self) -> float:
        return self.module.peak_floats_per_pixel


def load(spec: str) -> LoadedModel:
    """Resolve and load a model spec; errors are ModelNotFound or ModelFormatError with one-line messages."""
    return LoadedModel.of(load_model(resolve(spec)))


# ---- listing and describing: every spec `--model` takes, with its numbers ------------------------------------

@dataclass
class ModelEntry:
    """One model a user can pass as a spec, with the numbers `models list` shows."""

    spec: str
    source: str  # "packaged" | "cache" | "folder" | "hub"
    folder: Path
    name: str
    scale: int
    params: int
    psnr: dict[str, float] = field(default_factory=dict)
    hub: str | None = None  # hf:owner/repo@revision this model corresponds to
    commit: str | None = None
    default: bool = False  # the packaged model `--scale` picks for its factor

    @classmethod
    def from_config(cls, config: dict[str, Any], **fields: Any) -> "ModelEntry":
        psnr = {name: float(v["psnr"]) for name, v in (config.get("metrics") or {}).items()
                if isinstance(v, dict) and "psnr" in v}
        return cls(name=config.get("name", Path(fields["folder"]).name), scale=int(config["scale"]),
                   params=int(config.get("params", 0)), psnr=psnr, **fields)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "folder": str(self.folder)}


def cached_models() -> list[ModelEntry]:
    """TriNAS models in the Hub cache that a fetch would accept, one entry per cached revision."""
    from .hub import HubSpec, usable_snapshots  # huggingface_hub is imported only when the Hub is asked for

    entries = []
    for snapshot in usable_snapshots():
        rev = snapshot.refs[0] if snapshot.refs else snapshot.commit
        spec = HubSpec(snapshot.repo, None if rev == "main" else rev)
        try:
            entries.append(ModelEntry.from_config(snapshot.config, spec=str(spec), source="cache",
                                                  folder=snapshot.folder, hub=str(HubSpec(snapshot.repo, snapshot.commit)),
                                                  commit=snapshot.commit))
        except (KeyError, TypeError, ValueError):
            continue  # a config without the numbers a listing shows
    return entries


def packaged_entries() -> list[ModelEntry]:
    """Packaged models; one without a hub record is listed all the same."""
    from .hub import hub_record

    entries, configs, damaged = [], {}, False
    for name, folder in packaged_models().items():
        try:
            configs[name] = config = read_config(folder)
        except ModelFormatError:
            damaged = True  # still list the others, but mark no default: `--scale` would fail on this one
            continue
        record = hub_record(config)
        entries.append(ModelEntry.from_config(config, spec=name, source="packaged", folder=folder,
                                              hub=str(record) if record else None,
                                              commit=record.revision if record else None))
    defaults = set() if damaged else {_best_for_scale(configs, entry.scale) for entry in entries}
    for entry in entries:
        entry.default = entry.spec in defaults
    return entries


def list_models() -> list[ModelEntry]:
    """Everything `--model` accepts without a path: packaged names, then cached Hub models."""
    return packaged_entries() + cached_models()


def pull(spec: str) -> ModelEntry:
    """Pre-fetch a Hub model into the cache (verified) so it later works offline; returns its cache entry."""
    from .hub import HubError, HubSpec, default_repo, fetch, hub_record, parse_spec

    packaged = packaged_models()
    if spec in packaged:
        record = hub_record(read_config(packaged[spec])) or HubSpec(default_repo(spec))
        raise HubError(f"{spec} is packaged and already on this machine; its Hub copy is `upscale models pull "
                       f"{record}`")
    hub_spec = parse_spec(spec)
    folder = fetch(hub_spec)
    return ModelEntry.from_config(read_config(folder), spec=str(hub_spec), source="cache", folder=folder,
                                  hub=str(HubSpec(hub_spec.repo, folder.name)), commit=folder.name)


def describe(spec: str) -> tuple[ModelEntry, dict[str, Any], str]:
    """(entry, config, model card text) for any model spec; a Hub spec is fetched (or read from the cache)."""
    from trinas.export import CARD, model_card

    from .hub import HubSpec, hub_record, parse_spec

    folder = resolve(spec)
    config = read_config(folder)
    card = _card_text(folder / CARD) or model_card(config)
    if spec.startswith(HUB_PREFIX):
        hub_spec = parse_spec(spec)
        entry = ModelEntry.from_config(config, spec=spec, source="hub", folder=folder,
                                       hub=str(HubSpec(hub_spec.repo, folder.name)), commit=folder.name)
    else:
        record = hub_record(config)
        source = "packaged" if spec in packaged_models() else "folder"
        entry = ModelEntry.from_config(config, spec=spec, source=source, folder=folder,
                                       hub=str(record) if record else None,
                                       commit=record.revision if record else None)
    return entry, config, card


def _card_text(path: Path) -> str | None:
    """A folder's model card, or None (the card is then made from its config) where there is none or it is
    not a card: over MAX_CARD_BYTES (a Hub repo's README.md is anyone's file) or not UTF-8 text."""
    try:
        return read_bounded(path, MAX_CARD_BYTES).decode()
    except (OSError, ValueError):  # FileTooLarge and UnicodeDecodeError are ValueErrors
        return None


__all__ = ["LoadedModel", "ModelEntry", "ModelFormatError", "ModelNotFound", "cached_models", "describe", "list_models", "load",
           "packaged_for_factor", "packaged_for_scale", "packaged_models", "pull", "resolve"]
