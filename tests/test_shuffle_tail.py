"""The shuffle tail: every cell at the input resolution, one pixel shuffle at the end, a nearest skip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trinas.cost import madds_per_output_pixel
from trinas.export import load_model, read_config, save_model
from trinas.latency import layers_of
from trinas.net import TriNet, fold
from trinas.operations import add_to_subpixels
from trinas.space import Cell, Genotype, SearchSpace, Upsample, random_genotype

GENOTYPE = Genotype(4, 8, (Cell(("rep3x3", "conv3x3"), (6, 8)),), tail="shuffle")


def test_a_zero_network_is_nearest_upscaling():
    net = TriNet(Genotype(3, 4, (), tail="shuffle"))
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
    x = torch.rand(1, 3, 5, 7)
    assert torch.equal(net(x), x.repeat_interleave(3, dim=2).repeat_interleave(3, dim=3))


@pytest.mark.parametrize("channels_last", [False, True])
def test_the_nearest_skip_adds_the_input_to_every_sub_pixel_channel(channels_last):
    """`add_to_subpixels` is the repeated input added, with gradients and written in place without them; the
    input is left as it was."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    y = torch.rand(2, 3 * 9, 5, 7).contiguous(memory_format=layout).requires_grad_()
    x = torch.rand(2, 3, 5, 7).contiguous(memory_format=layout)
    expected = y.detach() + x.repeat_interleave(9, dim=1)
    trained = add_to_subpixels(y, x, 3)
    assert torch.equal(trained, expected) and trained.shape == y.shape
    trained.sum().backward()
    assert torch.equal(y.grad, torch.ones_like(y))
    original, fresh = x.clone(), y.detach().clone()
    with torch.inference_mode():
        inferred = add_to_subpixels(fresh, x, 3)
    assert torch.equal(inferred, expected) and torch.equal(x, original)
    assert inferred.data_ptr() == fresh.data_ptr() and inferred.stride() == fresh.stride()  # its layout kept


def test_output_size_folding_and_a_model_folder(tmp_path):
    torch.manual_seed(0)
    net = TriNet(GENOTYPE)
    x = torch.rand(2, 3, 9, 11)
    y = net(x)
    assert y.shape == (2, 3, 36, 44)
    assert torch.allclose(fold(net)(x), y, atol=1e-5)
    save_model(net, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.genotype == GENOTYPE and loaded.genotype.describe().endswith("shuffle4")
    assert torch.allclose(loaded(x), y, atol=1e-5)


def test_the_genotype_is_checked_and_round_trips():
    assert Genotype.from_dict(GENOTYPE.to_dict()) == GENOTYPE
    assert "tail" not in Genotype(2, 8, (Upsample(2),)).to_dict()  # older genotypes are unchanged
    with pytest.raises(ValueError, match="no upsamplers"):
        Genotype(4, 8, (Upsample(2), Upsample(2)), tail="shuffle")
    with pytest.raises(ValueError, match="tail must be"):
        Genotype(2, 8, (Upsample(2),), tail="deconv")


def test_random_networks_of_a_shuffle_space_have_its_tail():
    """The latency check draws them (a draw without the space's tail failed: cells only, no upsamplers)."""
    rng = np.random.default_rng(0)
    for scale in (2, 3, 4):
        for _ in range(5):
            g = random_genotype(SearchSpace(scale, tail="shuffle"), rng)
            assert g.tail == "shuffle" and g.scale == scale and not any(isinstance(s, Upsample) for s in g.path)


def test_costs_and_latency_layers_run_at_the_input_resolution():
    conv_tail = Genotype(4, 8, (Cell(("rep3x3", "conv3x3"), (6, 8)), Upsample(2), Upsample(2)))
    assert madds_per_output_pixel(GENOTYPE) < madds_per_output_pixel(conv_tail)  # no convolutions at 2x and 4x
    layers = layers_of(GENOTYPE, 10, 12)
    assert {(layer.height, layer.width) for layer in layers} == {(10, 12)}
    assert [layer.kind for layer in layers][-3:] == ["tail", "nearest_add", "shuffle"]
    assert "bicubic" not in {layer.kind for layer in layers}


def test_the_engine_tiles_it_seamlessly(tmp_path):
    import numpy as np

    from upscale.engine import Upscaler

    torch.manual_seed(0)
    save_model(TriNet(GENOTYPE), tmp_path / "m")
    image = np.random.default_rng(0).integers(0, 256, (30, 41, 3), dtype=np.uint8)
    whole = Upscaler.from_pretrained(str(tmp_path / "m"), tile=0).upscale_array(image)
    tiled = Upscaler.from_pretrained(str(tmp_path / "m"), tile=12).upscale_array(image)
    assert whole.shape == (120, 164, 3)
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 1  # float rounding of other tile sizes only


def test_a_tiny_shuffle_tail_search_runs_end_to_end(tmp_path, monkeypatch):
    """`upscale search --tail shuffle`: one segment at the input resolution, a derived TriNet with the tail."""
    from click.testing import CliRunner
    from PIL import Image
    import numpy as np

    from upscale.cli import main

    rng = np.random.default_rng(0)
    for folder, count in (("train", 6), ("val", 2)):
        (tmp_path / folder).mkdir()
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / folder / f"{i}.png")
    result = CliRunner().invoke(main, ["search", "--scale", "4", "--train", str(tmp_path / "train"), "--val",
                                       str(tmp_path / "val"), "--out", str(tmp_path / "out"), "--steps", "12",
                                       "--max-width", "8", "--max-cells", "2", "--tail", "shuffle", "--batch", "2",
                                       "--patch", "8", "--val-every", "6", "--quiet", "--threads", "1"])
    assert result.exit_code == 0, result.output
    genotype = load_model(tmp_path / "out").genotype
    assert genotype.tail == "shuffle" and not any(isinstance(s, Upsample) for s in genotype.path)
    command = read_config(tmp_path / "out")["training"]["command"]  # as typed, not pytest's argv
    assert command.startswith("upscale search --scale 4 --train ") and command.endswith("--patch 8 --val-every 6 --quiet")
