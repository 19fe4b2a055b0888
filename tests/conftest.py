"""Shared fixtures: tiny untrained models that make the tests fast and independent of packaged weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trinas.export import save_model
from trinas.net import TriNet
from trinas.space import baseline_genotype


def make_tiny_model(folder: Path, scale: int = 2, width: int = 8, cells: int = 1, seed: int = 0,
                    bicubic: bool = False) -> Path:
    """Write a small randomly initialised model folder (a valid model, just not a good one).

    `bicubic=True` zeroes the tail so the model outputs exactly its bicubic skip: colours stay true.
    """
    torch.manual_seed(seed)
    model = TriNet(baseline_genotype(scale, width=width, cells=cells))
    if bicubic:
        torch.nn.init.zeros_(model.tail.weight)
        torch.nn.init.zeros_(model.tail.bias)
    save_model(model, folder)
    return folder


@pytest.fixture
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-x2")


@pytest.fixture
def tiny_model_x4_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-x4", scale=4)


def fake_layer_time(module, channels, height, width, device, **kwargs) -> float:
    """A deterministic stand-in for timing a layer: parameters x pixels, plus a little per layer."""
    return 0.01 + sum(p.numel() for p in module.parameters()) * height * width * 1e-6


def fake_frame_times(genotypes, tiles, device, **kwargs) -> dict[str, float]:
    """A stand-in for timing whole networks: 0.9x their layers' `fake_layer_time`s, plus 0.1 ms a tile."""
    from trinas.latency import layer_module, layers_of

    def frame(genotype):
        total = 0.0
        for h, w in tiles:
            total += 0.1
            for layer in layers_of(genotype, h, w):
                module, channels = layer_module(layer)
                total += 0.9 * fake_layer_time(module, channels, layer.height, layer.width, device)
        return total

    return {name: frame(g) for name, g in genotypes.items()}


def each_module(fake):
    """`trinas.latency.time_modules` made of a stand-in that times one module."""
    return lambda items, device, **kwargs: [fake(module, c, h, w, device) for module, c, h, w in items]


@pytest.fixture
def fake_clock(tmp_path, monkeypatch):
    """Latency tables in a temporary cache, filled by `fake_layer_time` instead of the clock."""
    from trinas import latency

    monkeypatch.setenv("TRINAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(latency, "time_modules", each_module(fake_layer_time))
    monkeypatch.setattr(latency, "measure_frames", fake_frame_times)
    monkeypatch.setattr(latency, "busy_cores", lambda seconds=0.5: 0.0)  # stand-in clocks: an idle machine
    return tmp_path / "cache" / "latency"
