"""`upscale eval`: the table, the JSON, and recording the figures into a model folder."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner
from PIL import Image

from conftest import make_tiny_model
from trinas.export import read_config
from upscale.cli import main


def make_dataset(folder, count=3, size=(48, 40)):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        smooth = np.kron(rng.integers(0, 256, (size[1] // 8, size[0] // 8, 3)), np.ones((8, 8, 1)))
        Image.fromarray(smooth.astype(np.uint8)).save(folder / f"img{i}.png")
    return folder


def test_eval_json_has_model_and_bicubic_figures(tmp_path):
    model = make_tiny_model(tmp_path / "m", bicubic=True)
    data = make_dataset(tmp_path / "Tiny")
    result = CliRunner().invoke(main, ["eval", "--model", str(model), "--data", str(data), "--json"])
    assert result.exit_code == 0, result.output
    means = json.loads(result.output)["Tiny"]
    assert means["images"] == 3
    # A model that outputs its own bicubic skip scores close to MATLAB bicubic (PyTorch's bicubic differs slightly).
    assert abs(means["psnr"] - means["bicubic_psnr"]) < 1.0
    assert 0 < means["ssim"] <= 1 and means["seconds_per_image"] > 0


def test_eval_table_and_record(tmp_path):
    model = make_tiny_model(tmp_path / "m")
    data = make_dataset(tmp_path / "Tiny")
    result = CliRunner().invoke(main, ["eval", "--model", str(model), "--data", str(data), "--per-image",
                                       "--record"])
    assert result.exit_code == 0, result.output
    assert "img0" in result.output and "bicubic PSNR" in result.output
    recorded = read_config(model)["metrics"]["Tiny"]
    assert set(recorded) >= {"psnr", "ssim", "bicubic_psnr", "bicubic_ssim"}
    assert "Tiny" in (model / "README.md").read_text()


def test_eval_bad_data_folder_is_one_line(tmp_path):
    model = make_tiny_model(tmp_path / "m")
    result = CliRunner().invoke(main, ["eval", "--model", str(model), "--data", str(tmp_path / "missing")])
    assert result.exit_code == 1 and result.output.startswith("error:") and result.output.count("\n") == 1
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(main, ["eval", "--model", str(model), "--data", str(tmp_path / "empty")])
    assert result.exit_code == 1 and "no images" in result.output


def test_record_into_a_hub_snapshot_is_refused_before_anything_is_fetched(tmp_path, monkeypatch):
    import upscale.hub

    def no_network(*args, **kwargs):
        raise AssertionError("the Hub was asked")

    monkeypatch.setattr(upscale.hub, "fetch", no_network)
    data = make_dataset(tmp_path / "Tiny")
    result = CliRunner().invoke(main, ["eval", "--model", "hf:someone/model", "--data", str(data), "--record"])
    assert result.exit_code == 1 and result.output.startswith("error: ") and "Hugging Face cache" in result.output


def test_eval_outscale_scores_the_route_to_another_factor(tmp_path):
    """`--scale 2 --outscale 4` as a user runs it: LR made at x4, the x2 model, a resize. A bicubic x2 model
    then a resize lands near bicubic x4 (below it: two resizes), and the bicubic column is the x4 one."""
    x2 = make_tiny_model(tmp_path / "x2", bicubic=True)
    x4 = make_tiny_model(tmp_path / "x4", scale=4, bicubic=True)
    data = make_dataset(tmp_path / "Tiny", size=(64, 48))

    def means(*args):
        result = CliRunner().invoke(main, ["eval", "--data", str(data), "--json", *args])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)["Tiny"]

    route, own, at_four = means("--model", str(x2), "--outscale", "4"), means("--model", str(x2)), means("--model", str(x4))
    assert route["bicubic_psnr"] == at_four["bicubic_psnr"] != own["bicubic_psnr"]
    assert abs(route["psnr"] - at_four["bicubic_psnr"]) < 1.5 and route["psnr"] != own["psnr"]
    table = CliRunner().invoke(main, ["eval", "--model", str(x2), "--outscale", "4", "--data", str(data)])
    assert "x4 by x2 and a resize" in table.output
    refused = CliRunner().invoke(main, ["eval", "--model", str(x2), "--outscale", "4", "--data", str(data), "--record"])
    assert refused.exit_code == 1 and "--record stores a model's own x2 figures" in refused.output
    assert not read_config(x2).get("metrics")  # nothing recorded
