"""Self-ensemble (--tta) and --outscale routing: the packaged model that reaches a factor best, and output
names that say the factor the image really has."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from trinas.export import read_config, save_model
from trinas.net import TriNet
from trinas.space import baseline_genotype
from upscale import models
from upscale.cli import main
from trinas.symmetry import DIHEDRAL, transform, untransform
from upscale.engine import Upscaler


def random_net(scale: int = 2) -> TriNet:
    torch.manual_seed(scale)
    net = TriNet(baseline_genotype(scale, 8, 1))
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.1)
    return net


def test_tta_is_the_mean_over_the_eight_symmetries_and_equals_plain_for_a_symmetric_model():
    net = random_net()
    x = torch.rand(1, 3, 13, 19)
    up = Upscaler(net, device="cpu", tile=8, tta=True)
    with torch.inference_mode():
        expected = torch.stack([untransform(net(transform(x, t, f)), t, f) for t, f in DIHEDRAL]).mean(0)
    assert torch.allclose(up.run_tensor(x), expected.clamp(0, 1), atol=1e-5)
    assert len(set(DIHEDRAL)) == 8
    torch.nn.init.zeros_(net.tail.weight)
    torch.nn.init.zeros_(net.tail.bias)  # bicubic alone is symmetric: the ensemble changes nothing
    image = (np.random.default_rng(0).random((11, 17, 3)) * 255).astype(np.uint8)
    plain, ensemble = Upscaler(net, device="cpu").upscale_array(image), Upscaler(net, device="cpu", tta=True)
    assert np.array_equal(plain, ensemble.upscale_array(image))


@pytest.fixture
def packaged(tmp_path, monkeypatch):
    """Packaged models x2, x3 and x4 (tiny ones) in a temporary weights folder."""
    for scale in (2, 3, 4):
        save_model(random_net(scale), tmp_path / f"tiny-x{scale}")
    monkeypatch.setattr(models, "weights_root", lambda: tmp_path)
    return tmp_path


@pytest.mark.parametrize("factor, scale", [(2, 2), (3, 3), (4, 4), (8, 4), (1.5, 2), (2.5, 3), (3.5, 4), (6, 4)])
def test_outscale_picks_the_packaged_model_that_reaches_the_factor_best(packaged, factor, scale):
    assert models.packaged_for_factor(factor) == scale


def test_outscale_outputs_are_named_by_their_real_factor(packaged, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.new("RGB", (12, 10), (30, 60, 90)).save(src / "a.png")
    for factor, name, size in (("3", "a_x3.png", (36, 30)), ("8", "a_x8.png", (96, 80)), ("1.5", "a_x1.5.png", (18, 15))):
        result = CliRunner().invoke(main, ["image", str(src / "a.png"), "--outscale", factor, "--json", "--tta"])
        assert result.exit_code == 0, result.output
        summary = json.loads(result.output)
        assert summary["done"] == [str(src / name)] and Image.open(src / name).size == size
        assert summary["model"] == f"tiny-x{ {'3': 3, '8': 4, '1.5': 2}[factor] }"


def test_eval_records_tta_figures_beside_the_plain_ones(packaged, tmp_path):
    data = tmp_path / "set"
    data.mkdir()
    Image.new("RGB", (16, 16), (200, 100, 50)).save(data / "a.png")
    folder = packaged / "tiny-x2"
    for extra in ([], ["--tta"]):
        result = CliRunner().invoke(main, ["eval", "--model", str(folder), "--data", str(data), "--record", *extra])
        assert result.exit_code == 0, result.output
    config = read_config(folder)
    assert set(config["metrics"]) == set(config["metrics_tta"]) == {"set"}
    assert "--tta" in (folder / "README.md").read_text()


def test_a_scale_defaults_to_its_best_packaged_model_on_the_validation_set(packaged):
    """A faster, newer or searched model is not the default for its scale unless it also scores higher on
    Set5 (the set models are chosen on); without recorded figures a searched model comes first."""
    from trinas.export import write_config

    save_model(random_net(4), packaged / "tiny-x4-fast")
    config = read_config(packaged / "tiny-x4-fast")
    config["searched"] = True
    write_config(packaged / "tiny-x4-fast", config)
    assert models.packaged_for_scale(4) == "tiny-x4-fast"  # nothing recorded: searched first
    for name, psnr in (("tiny-x4", 30.6), ("tiny-x4-fast", 30.1)):
        config = read_config(packaged / name)
        config["metrics"] = {name: {"psnr": value, "ssim": 0.8, "bicubic_psnr": 28.0, "bicubic_ssim": 0.7,
                                    "images": 5} for name, value in (("Set5", psnr), ("Set14", 60.0 - psnr))}
        write_config(packaged / name, config)
    assert models.packaged_for_scale(4) == "tiny-x4"
    assert models.packaged_for_scale(2) == "tiny-x2"
