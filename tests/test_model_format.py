"""The model folder and the TriNet descriptor: what loads, what is refused, and what the engine relies on."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import make_tiny_model
from trinas.cost import count_params, madds_per_output_pixel
from trinas.export import ModelFormatError, load_model, read_config, save_model
from trinas.net import TriNet
from trinas.space import Cell, Genotype, Upsample, baseline_genotype, upsample_factors


def test_round_trip_keeps_outputs_and_records_the_facts(tiny_model_dir):
    model = load_model(tiny_model_dir)
    config = read_config(tiny_model_dir)
    assert config["scale"] == 2 and config["params"] == count_params(model)
    assert config["receptive_field"] == model.receptive_field
    assert Genotype.from_dict(config["genotype"]) == model.genotype
    card = (tiny_model_dir / "README.md").read_text()
    assert card.startswith("---\n") and "baseline" in card


def test_corrupted_or_truncated_weights_are_refused(tiny_model_dir):
    weights = tiny_model_dir / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFormatError, match="sha256"):
        load_model(tiny_model_dir)
    weights.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(ModelFormatError, match="sha256"):
        load_model(tiny_model_dir)


def test_pickled_weights_are_never_loaded(tiny_model_dir):
    (tiny_model_dir / "model.safetensors").unlink()
    torch.save({"x": torch.zeros(1)}, tiny_model_dir / "pytorch_model.bin")
    with pytest.raises(ModelFormatError, match="pickled weights are never loaded"):
        load_model(tiny_model_dir)


def test_weights_that_do_not_fit_the_genotype_are_refused(tiny_model_dir, tmp_path):
    other = make_tiny_model(tmp_path / "wide", width=16)
    (tiny_model_dir / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
    config = json.loads((tiny_model_dir / "config.json").read_text())
    config.pop("weights_sha256")
    (tiny_model_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFormatError, match="do not fit"):
        load_model(tiny_model_dir)


def test_bad_config_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelFormatError, match="not valid JSON"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"architecture": "TriNet", "format_version": 99}))
    with pytest.raises(ModelFormatError, match="newer"):
        load_model(tmp_path)


@pytest.mark.parametrize("bad,match", [
    (dict(scale=4, width=8, path=(Upsample(2),)), "multiply to x2"),
    (dict(scale=2, width=8, path=(Cell(("conv3x3",), (4,)), Upsample(2))), "end at the trunk width"),
    (dict(scale=2, width=8, path=(Cell(("nope",), (8,)), Upsample(2))), "unknown operations"),
    (dict(scale=2, width=8, path=(Cell(("skip",), (4,)), Upsample(2))), "keeps its width"),
])
def test_invalid_genotypes_name_the_problem(bad, match):
    with pytest.raises(ValueError, match=match):
        Genotype(**bad)


def test_every_scale_from_2_to_8_has_an_upsampler_path():
    for scale in range(2, 9):
        factors = upsample_factors(scale)
        assert torch.tensor(factors).prod().item() == scale
        assert TriNet(baseline_genotype(scale, width=4, cells=1))(torch.rand(1, 3, 5, 6)).shape[-2:] == (5 * scale,
                                                                                                       6 * scale)


@pytest.mark.parametrize("genotype", [
    baseline_genotype(2, width=4, cells=2),
    Genotype(scale=4, width=4, path=(Cell(("dilconv3x3", "conv5x5"), (6, 4)), Upsample(2),
                                     Cell(("sepconv3x3", "resblock3x3"), (4, 4)), Upsample(2))),
])
def test_receptive_field_covers_the_real_dependency(genotype):
    """Perturb one input pixel: no output pixel farther than the declared receptive field may change."""
    torch.manual_seed(0)
    model = TriNet(genotype).double().eval()
    x = torch.rand(1, 3, 31, 31, dtype=torch.float64)
    bumped = x.clone()
    bumped[0, :, 15, 15] += 1.0
    with torch.no_grad():
        changed = (model(bumped) - model(x)).abs().sum(1)[0] > 1e-12
    rows, cols = torch.nonzero(changed, as_tuple=True)
    s = genotype.scale
    reach = max((rows // s - 15).abs().max().item(), (cols // s - 15).abs().max().item())
    assert 0 < reach <= model.receptive_field


def test_cost_counts_grow_with_width():
    small, large = baseline_genotype(2, width=16), baseline_genotype(2, width=32)
    assert madds_per_output_pixel(large) > 3 * madds_per_output_pixel(small)
    # The count agrees with the parameters of a network made only of convs at input resolution.
    g = baseline_genotype(2, width=8, cells=2)
    weights = sum(p.numel() for n, p in TriNet(g).named_parameters() if n.endswith("weight") and "body" in n)
    assert madds_per_output_pixel(g) * 4 >= weights


def test_a_folder_of_format_1_holds_unfolded_weights_and_still_loads(tmp_path):
    """Format 2 stores the folded network; a format-1 folder (weights as trained) is folded after loading."""
    from safetensors.torch import save_file

    from trinas.export import WEIGHTS, sha256_file, write_config

    genotype = Genotype(2, 8, (Cell(("conv3x3",), (8,)), Cell(("conv3x3", "conv3x3"), (8, 8)), Upsample(2)))
    torch.manual_seed(0)
    net = TriNet(genotype).eval()
    config = save_model(net, tmp_path / "m")
    assert config["format_version"] == 2
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "m" / WEIGHTS))
    write_config(tmp_path / "m", {**config, "format_version": 1, "weights_sha256": sha256_file(tmp_path / "m" / WEIGHTS)})
    x = torch.rand(1, 3, 9, 7)
    with torch.no_grad():
        assert torch.allclose(load_model(tmp_path / "m")(x), net(x), atol=1e-6)


@pytest.mark.parametrize("change, message", [
    ({"width": 4096}, "width must be 1..512"),
    ({"width": 16384}, "width must be 1..512"),
    ({"path": [{"type": "cell", "ops": ["conv3x3"], "widths": [8]}] * 10_000 + [{"type": "upsample", "factor": 2}]},
     "at most 64 cells and upsamplers"),
    ({"scale": 1000, "path": [{"type": "upsample", "factor": f} for f in (2, 2, 2, 5, 5, 5)]},
     "scale must be an integer from 2 to 8"),
])
def test_hostile_configs_are_refused_before_anything_is_built(tmp_path, change, message, monkeypatch):
    import time

    import trinas.export as export

    folder = make_tiny_model(tmp_path / "m")
    config = read_config(folder)
    config["genotype"] = {**config["genotype"], **change}
    (folder / "config.json").write_text(json.dumps(config))
    built = []
    monkeypatch.setattr(export, "TriNet", lambda *a, **k: built.append(1))
    started = time.monotonic()
    with pytest.raises(ModelFormatError, match=message):
        load_model(folder)
    assert time.monotonic() - started < 2 and not built


def test_weights_of_the_wrong_shape_are_refused_from_the_header_before_building(tmp_path, monkeypatch):
    import trinas.export as export

    folder = make_tiny_model(tmp_path / "m", width=8)
    other = make_tiny_model(tmp_path / "other", width=16)
    config = read_config(folder)
    (folder / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
    config["weights_sha256"] = read_config(other)["weights_sha256"]
    (folder / "config.json").write_text(json.dumps(config))
    real = export.TriNet
    built = []
    monkeypatch.setattr(export, "TriNet", lambda genotype, folded=False: built.append(str(torch.get_default_device()))
                        or real(genotype, folded=folded))
    with pytest.raises(ModelFormatError, match=r"head.weight has shape \[16, 3, 3, 3\], the genotype needs \[8, 3, 3, 3\]"):
        load_model(folder)
    assert built == ["meta"]  # only the shape check's network, on the meta device, was built
    (folder / "config.json").write_text("{" + " " * (2 << 20) + "}")
    with pytest.raises(ModelFormatError, match="larger than 1,048,576 bytes"):
        load_model(folder)


def test_the_card_front_matter_survives_any_name_and_names_the_hub_repo(tmp_path):
    from huggingface_hub import ModelCard

    from trinas.export import model_card

    folder = make_tiny_model(tmp_path / "m")
    config = {**read_config(folder), "name": "x2: #1 [beta]", "hub": {"repo": "alice/x2-beta", "revision": None},
              "metrics": {"Set5": {"psnr": 33.0, "ssim": 0.9, "bicubic_psnr": 32.0, "bicubic_ssim": 0.89}}}
    card = ModelCard(model_card(config))
    assert card.data.model_name == "x2: #1 [beta]" and card.data.library_name == "trinas-upscale"
    assert card.data.eval_results[0].metric_value == 33.0
    assert "pip install trinas-upscale" in card.text and "--model hf:alice/x2-beta" in card.text


def test_the_curve_caption_says_whose_curve_it_is(tmp_path):
    """A model trained on from a search keeps the search's settings, but its curves.png is the training run's."""
    from trinas.export import model_card

    config = read_config(make_tiny_model(tmp_path / "m"))
    searched = {**config, "search": {"steps": 10}, "training": {"steps": 10}}
    trained_on = {**searched, "training": {"steps": 20, "history": [{"step": 20, "psnr": 30.0}]}}
    assert "during the search" in model_card(searched, ("curves.png",))
    assert "training loss over the run" in model_card(trained_on, ("curves.png",))
    assert "training loss over the run" in model_card(config, ("curves.png",))


def test_the_scale_has_one_source_the_genotype(tmp_path):
    folder = make_tiny_model(tmp_path / "m")
    config = read_config(folder)
    config["scale"] = 4  # the repeated field disagrees with the genotype (x2)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFormatError, match="scale 4 disagrees with the genotype's 2"):
        load_model(folder)
