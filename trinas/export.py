"""The model folder <-> TriNet. The same layout as a Hugging Face Hub model repository:

    config.json        format version, architecture, scale, genotype, measured metrics, training, weights sha256
    model.safetensors  the weights of the folded network (`net.fold`): tensors only, nothing executable
    README.md          the model card, generated from config.json

Loading never unpickles anything and refuses weights whose sha256 does not match the config.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .cost import count_params, madds_per_output_pixel
from .files import FileTooLarge, read_bounded
from .net import TriNet, fold
from .space import Genotype

# 2: the weights are of the folded network (`net.fold`: re-parameterisable branches merged, single-conv
# residuals in their kernels). 1: as trained (no kind folded differently then), folded after loading.
FORMAT_VERSION = 2
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
CARD = "README.md"
MODEL_FILES = (CONFIG, WEIGHTS, CARD)
# Pictures the card shows when a model folder has them (optional: a model loads without them).
PICTURES = ("architecture.png", "curves.png")
# The config keys saying how a network was made (searched, and with what settings, or chosen by hand from another
# model's parts): a run that keeps the network (training on, pruning) carries them, so its card still says so.
PROVENANCE = ("searched", "search", "design", "derived_from")


def pictures_in(folder: Path) -> tuple[str, ...]:
    return tuple(name for name in PICTURES if (Path(folder) / name).is_file())


class ModelFormatError(ValueError):
    """A model folder that cannot be loaded; the message says what is wrong with which file."""


@dataclass(frozen=True)
class ModelConfig:
    """config.json, read once. The genotype is the one source of the scale and the channels (the file
    repeats them for people and the Hub; a file where they disagree is refused)."""

    genotype: Genotype
    name: str
    raw: dict[str, Any] = field(repr=False, compare=False)  # the whole file, for what only some callers read

    @property
    def scale(self) -> int:
        return self.genotype.scale

    @property
    def channels(self) -> int:
        return self.genotype.channels

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)

    @classmethod
    def of(cls, raw: dict[str, Any], where: str = CONFIG) -> "ModelConfig":
        try:
            genotype = Genotype.from_dict(raw["genotype"])
        except (KeyError, ValueError, TypeError) as exc:
            raise ModelFormatError(f"{where}: bad genotype: {exc}") from exc
        for key in ("scale", "channels"):
            if key in raw and raw[key] != getattr(genotype, key):
                raise ModelFormatError(f"{where}: {key} {raw[key]} disagrees with the genotype's "
                                       f"{getattr(genotype, key)}")
        return cls(genotype, str(raw.get("name", "model")), raw)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


PICKLED = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")  # weights files that unpickle: never loaded
MAX_CONFIG_BYTES = 1 << 20  # a config is a few kilobytes; a larger one is refused before it is read
MAX_CARD_BYTES = 1 << 20  # a model card too (one from the Hub is read only this far)


def read_config(folder: Path) -> dict[str, Any]:
    path = Path(folder) / CONFIG
    if not path.is_file():
        raise ModelFormatError(f"{folder} is not a model folder: no {CONFIG}")
    try:
        config = json.loads(read_bounded(path, MAX_CONFIG_BYTES))
    except FileTooLarge as exc:
        raise ModelFormatError(f"{exc}: a model config is a few kilobytes") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict) or config.get("architecture") != "TriNet":
        raise ModelFormatError(f"{path}: architecture must be 'TriNet'")
    if int(config.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelFormatError(f"{path}: format version {config['format_version']} is newer than this "
                               f"version of trinas understands ({FORMAT_VERSION}); upgrade the package")
    return config


def write_config(folder: Path, config: dict[str, Any]) -> None:
    """Write config.json and regenerate the model card from it."""
    folder = Path(folder)
    _write_atomic(folder / CONFIG, (json.dumps(config, indent=2) + "\n").encode())
    _write_atomic(folder / CARD, model_card(config, pictures_in(folder)).encode())


def save_model(model: TriNet, folder: Path, training: dict[str, Any] | None = None,
               metrics: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """Write a complete model folder for `model`, folded as inference runs it; returns its config."""
    folder = Path(folder)
    model = fold(model)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / WEIGHTS
    tmp = weights.with_name(f".{WEIGHTS}.tmp")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, weights)
    genotype = model.genotype
    config = {
        "format_version": FORMAT_VERSION,
        "architecture": "TriNet",
        "name": folder.name,
        "scale": genotype.scale,
        "channels": genotype.channels,
        "genotype": genotype.to_dict(),
        "params": count_params(model),
        "madds_per_output_pixel": madds_per_output_pixel(genotype),
        "receptive_field": model.receptive_field,
        "supports_half": model.supports_half,
        "metrics": metrics or {},
        "training": training or {},
        "weights_sha256": sha256_file(weights),
        **extra,
    }
    from .search_report import draw_architecture  # local: pictures need PIL's drawing, loading does not

    draw_architecture(model.genotype, folder / "architecture.png")
    write_config(folder, config)
    return config


def load_model(folder: Path, verify: bool = True) -> TriNet:
    """Build the TriNet a model folder describes and load its weights (safetensors only)."""
    folder = Path(folder)
    config = read_config(folder)
    weights = folder / WEIGHTS
    if not weights.is_file():
        pickled = sorted(p.name for p in folder.glob("*") if p.name.endswith(PICKLED))
        hint = f" (found {', '.join(pickled)}: pickled weights are never loaded)" if pickled else ""
        raise ModelFormatError(f"{folder}: no {WEIGHTS}{hint}")
    expected = config.get("weights_sha256")
    if verify and expected and sha256_file(weights) != expected:
        raise ModelFormatError(f"{weights}: sha256 does not match config.json (corrupt or truncated download?)")
    described = ModelConfig.of(config, str(folder / CONFIG))
    genotype = described.genotype
    folded = int(config.get("format_version", 1)) >= 2
    _check_weight_shapes(weights, genotype, folded)
    model = TriNet(genotype, folded=folded)
    try:
        state = load_file(str(weights))
        model.load_state_dict(state, strict=True)
    except (SafetensorError, RuntimeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelFormatError(f"{weights}: weights do not fit the genotype: {first}") from exc
    model = fold(model)
    model.config = described  # type: ignore[attr-defined]
    return model.eval()


def _check_weight_shapes(weights: Path, genotype: Genotype, folded: bool) -> None:
    """Compare the tensors named in the safetensors header with the genotype's, before anything is allocated:
    the network is built on the meta device (shapes only, no memory) and the header is read without data."""
    import torch

    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in TriNet(genotype, folded=folded).state_dict().items()}
    try:
        with safe_open(str(weights), framework="pt") as f:
            found = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFormatError(f"{weights}: not a readable safetensors file ({first})") from exc
    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if missing or unexpected:
        names = ", ".join((missing or unexpected)[:3])
        raise ModelFormatError(f"{weights}: weights do not fit the genotype: "
                               f"{'missing' if missing else 'unexpected'} tensors {names}")
    for key, shape in expected.items():
        if found[key] != shape:
            raise ModelFormatError(f"{weights}: weights do not fit the genotype: {key} has shape "
                                   f"{list(found[key])}, the genotype needs {list(shape)}")


def _card_data(name: str, scale: int, metrics: dict[str, Any]):
    """The card's YAML front matter through huggingface_hub's own types, so any name is quoted correctly."""
    from huggingface_hub import EvalResult, ModelCardData

    results = [EvalResult(task_type="image-super-resolution", dataset_type=dataset, dataset_name=dataset,
                          metric_type=kind, metric_value=round(float(values[kind]), 4 if kind == "ssim" else 2))
               for dataset, values in metrics.items() for kind in ("psnr", "ssim") if kind in values]
    return ModelCardData(library_name="trinas-upscale", license="mit", pipeline_tag="image-to-image",
                         tags=["super-resolution", "image-upscaling", f"x{scale}", "trinas"],
                         model_name=name if results else None, eval_results=results or None)


def model_card(config: dict[str, Any], pictures: tuple[str, ...] = ()) -> str:
    """A Hub model card (YAML front matter + prose) that a person reads, generated from config.json; it shows
    the `pictures` (names from PICTURES) that lie beside it."""
    scale, name = config["scale"], config.get("name", "trinas")
    metrics = config.get("metrics", {})
    training = config.get("training", {})
    searched = config.get("searched", False)
    lines = ["---", _card_data(name, scale, metrics).to_yaml(), "---"]
    lines += ["", f"# {name}", ""]
    if searched:
        kind = "a model found by the TriNAS trilevel architecture search"
    elif config.get("design"):  # chosen by hand from searched parts: it says how, and no search claims it
        source = f". It started from the weights of `{config['derived_from']}`" if config.get("derived_from") else ""
        kind = f"a network chosen by hand, not by a search of its own: {config['design'].rstrip('.')}{source}"
    else:
        kind = ("a **baseline**: a hand-chosen genotype, not a searched model. It exists to measure searched "
                "models against")
    lines += [f"x{scale} single-image super-resolution with TriNet, {kind}.", "",
              "| | |", "|---|---|",
              f"| scale | x{scale} |",
              f"| parameters | {config.get('params', 0):,} |",
              f"| multiply-adds per output pixel | {config.get('madds_per_output_pixel', 0):,.0f} |",
              f"| receptive field (input pixels each side) | {config.get('receptive_field', '?')} |",
              f"| genotype | `{Genotype.from_dict(config['genotype']).describe()}` |", ""]
    if "architecture.png" in pictures:
        lines += ["![the network: head, cells and upsamplers at their resolutions, tail](architecture.png)", ""]
    if metrics:
        lines += ["## Measured quality", "",
                  "PSNR/SSIM on the Y channel, `scale` border pixels cut, LR made by MATLAB-style bicubic; "
                  "bicubic upscaling beside it. Reproduce with:", "",
                  "```", f"upscale eval --model {name} --data DATA/val/Set5 --data DATA/val/Set14", "```", "",
                  "| data set | PSNR (dB) | SSIM | bicubic PSNR | bicubic SSIM |", "|---|---|---|---|---|"]
        for dataset, v in metrics.items():
            lines.append(f"| {dataset} | {v['psnr']:.2f} | {v['ssim']:.4f} | {v['bicubic_psnr']:.2f} | "
                         f"{v['bicubic_ssim']:.4f} |")
        lines.append("")
    tta = config.get("metrics_tta", {})
    if tta:
        lines += ["With self-ensemble (the mean over the 8 flips and rotations of the input, 8x the time):", "",
                  "```", f"upscale eval --model {name} --data DATA/val/Set5 --data DATA/val/Set14 --tta", "```", "",
                  "| data set | PSNR (dB) | SSIM |", "|---|---|---|"]
        lines += [f"| {dataset} | {v['psnr']:.2f} | {v['ssim']:.4f} |" for dataset, v in tta.items()]
        lines.append("")
    lines += _speed_section(config.get("speed"))
    lines += _controls_section(config.get("controls"))
    if training:
        lines += ["## Training", ""]
        for key in ("data", "steps", "batch", "patch", "loss", "optimizer", "lr", "seed", "precision", "teacher",
                    "command", "note"):
            if key in training:
                lines.append(f"- {key}: {training[key]}")
        if training.get("pruned"):
            lines.append(f"- {_pruning(training['pruned'])}")
        if training.get("before"):
            lines += ["", "It started from the weights of an earlier run, made by:", ""]
            for earlier in training["before"]:
                lines.append(f"- `{earlier.get('command', '?')}`, {earlier.get('steps', '?')} steps")
                if earlier.get("pruned"):
                    lines.append(f"- then {_pruning(earlier['pruned'])}")
        lines.append("")
    if "curves.png" in pictures:
        # A training run writes its own curve (its history is in the config), also when it went on from a search.
        trained = "history" in config.get("training", {}) or "search" not in config
        caption = ("validation PSNR and training loss over the run" if trained
                   else "validation PSNR and the architecture's distributions during the search")
        lines += [f"![{caption}](curves.png)", ""]
    hub = (config.get("hub") or {}).get("repo")
    spec = f"hf:{hub}" if hub else name
    lines += ["## Use", "", "```", "pip install trinas-upscale", f"upscale image photo.png --model {spec}", "```", "",
              "```python", "from upscale import Upscaler", f'up = Upscaler.from_pretrained("{spec}")',
              "big = up(image)  # PIL image or numpy array", "```", ""]
    return "\n".join(lines)


def _pruning(record: dict) -> str:
    """One line of a card on a pruning: from what, to what predicted time, and the command when it was one of
    its own (`upscale prune`; within `upscale search --prune` the search's command is the one above)."""
    source = record.get("unpruned") or record.get("from", "?")
    line = (f"pruned from `{source}` to a predicted {record.get('predicted_ms_after', 0):.1f} ms per "
            f"{record.get('at', '?')} frame on the {record.get('device', '?')} (was "
            f"{record.get('predicted_ms_before', 0):.1f}), then fine-tuned {record.get('fine_tune_steps', 0)} steps")
    return line + (f": `{record['command']}`" if record.get("command") else "")


SPEED_HOW = {"engine": "the engine alone (`upscale bench`)",
             "end to end": "`upscale image` over a folder, PNG in, JPEG out, start-up excluded"}


def _speed_section(speed: list[dict] | None) -> list[str]:
    """Frame times measured on named machines (`upscale bench --record`, `benchmarks/frame_folder_fps.py
    --record`), each with the command that measured it: speed depends on the machine, so it says which."""
    if not speed:
        return []
    lines = ["## Measured speed", "",
             "Times depend on the machine: rerun the command on yours.", "",
             "| measured | device | precision | input -> output | ms per frame | frames/s | date |",
             "|---|---|---|---|---|---|---|"]
    for e in speed:  # a note says what differs, e.g. a figure of the same network with its earlier weights
        how = SPEED_HOW.get(e["how"], e["how"]) + (f" ({e['note']})" if e.get("note") else "")
        lines.append(f"| {how} | {e['device_name']} | {e['precision']} | "
                     f"{e['input']} -> {e['output']} | {e['ms_per_frame']:.1f} | {e['fps']:.1f} | {e['date']} |")
    for e in speed:  # models timed beside it in the same run (`upscale bench --against`): the fair comparison
        for other, ms in (e.get("against") or {}).items():
            lines += ["", f"Beside `{other}` in the same run ({e['output']} output): {ms:.1f} ms, so this model "
                          f"takes {e['ms_per_frame'] / ms:.2f}x its time."]
    lines += ["", "Measured with:", "", "```", *dict.fromkeys(e["command"] for e in speed), "```", ""]
    return lines


def _controls_section(controls: dict | None) -> list[str]:
    """What the search's controls showed (`benchmarks/search_controls.py --record`), the only ground for saying
    the search found something: the genotype trained from scratch beside equal-cost ones, identically."""
    if not controls:
        return []
    s, sets, rank, n = controls["schedule"], controls["sets"], controls["rank"], controls["networks"]
    return ["## Does its search beat chance?", "",
            f"Trained from scratch beside {_baselines_named(controls)} of the same cost and {controls['random']} random "
            f"genotypes of the same search space within {controls.get('tolerance', 0.1):.0%} of its multiply-adds, all "
            f"under one schedule "
            f"({s['steps']} steps, batch {s['batch']}, {s['patch']}px patches, seeds {s['seeds']}; mean over "
            f"the seeds), it ranks **{rank['val']} of {n}** on {sets['val']} and **{rank['report']} of {n}** on "
            f"{sets['report']}:", "",
            f"| | {sets['val']} PSNR | {sets['report']} PSNR |", "|---|---|---|",
            f"| this genotype | {controls['found']['val']:.2f} | {controls['found']['report']:.2f} |",
            *_baseline_rows(controls),
            f"| median random genotype | {_median_cell(controls, 'val')} | {_median_cell(controls, 'report')} |", "",
            "The figures above this section come from longer training; these compare like with like. "
            "Reproduce with:", "", "```", controls["command"], "```", ""]


def _median_cell(controls: dict, key: str) -> str:
    """The random genotypes' median on a set; controls recorded before 0.2.0 kept only the reported set's."""
    median = controls.get(f"random_median_{key}")
    return "not recorded" if median is None else f"{median:.2f}"


def _baselines_named(controls: dict) -> str:
    return "hand-chosen baselines" if len(controls.get("baselines") or [0]) > 1 else "the hand-chosen baseline"


def _baseline_rows(controls: dict) -> list[str]:
    """One row per hand-chosen baseline (records before `baselines` hold one, of 3x3 convolutions)."""
    baselines = controls.get("baselines") or {"conv3x3": controls["baseline"]}
    return [f"| baseline of equal cost ({op} cells) | {b['val']:.2f} | {b['report']:.2f} |" for op, b in baselines.items()]


class OnnxUnavailable(RuntimeError):
    """ONNX export needs the optional extra: pip install "trinas-upscale[onnx]"."""


def export_onnx(model: TriNet, path: Path, opset: int = 18) -> Path:
    """Write the folded network as ONNX (input "lr", output "sr", float32 NCHW in [0, 1]), with dynamic batch,
    height and width; written atomically (a temporary file beside `path`, then a rename)."""
    import importlib.util
    import logging
    import warnings

    import torch

    if importlib.util.find_spec("onnxscript") is None or importlib.util.find_spec("onnx") is None:
        raise OnnxUnavailable('ONNX export needs the onnx extra: pip install "trinas-upscale[onnx]"')
    net = fold(model).float().eval()
    example = torch.rand(1, net.channels, 24, 24)
    batch, height, width = (torch.export.Dim(name, min=1) for name in ("batch", "height", "width"))
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # it reports, among others, that torchvision's ops are not installed
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(net, (example,), dynamo=True, opset_version=opset, input_names=["lr"],
                                        output_names=["sr"], dynamic_shapes=({0: batch, 2: height, 3: width},),
                                        verbose=False)
    finally:
        exporter_log.setLevel(level)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    program.save(str(tmp))
    os.replace(tmp, path)
    return path


def check_onnx(model: TriNet, path: Path, sizes: tuple[tuple[int, int, int], ...] = ((1, 37, 29), (2, 20, 50)),
               ) -> float:
    """The largest absolute difference between ONNX Runtime and PyTorch outputs over inputs of several sizes."""
    import numpy as np
    import torch

    try:
        import onnxruntime
    except ImportError as exc:
        raise OnnxUnavailable('checking an ONNX export needs onnxruntime: pip install "trinas-upscale[onnx]"') from exc
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    net = fold(model).float().eval()
    worst = 0.0
    for batch, height, width in sizes:
        x = torch.rand(batch, net.channels, height, width, generator=torch.Generator().manual_seed(height))
        with torch.inference_mode():
            expected = net(x).numpy()
        got = session.run(None, {"lr": x.numpy()})[0]
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst
