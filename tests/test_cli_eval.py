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
