"""`jobs/rename.py`: a packaged model renamed so a better one can take its name."""

import json

from tests.conftest import make_tiny_model
from tests.test_controls import load_script
from trinas.export import CONFIG, read_config


def load_rename():
    return load_script("rename", folder="jobs")


def test_a_renamed_model_keeps_its_weights_and_says_what_it_was(tmp_path, monkeypatch, capsys):
    rename = load_rename()
    monkeypatch.setattr(rename, "WEIGHTS", tmp_path)
    old = make_tiny_model(tmp_path / "demo-x2")
    config = json.loads((old / CONFIG).read_text())
    config.update(name="demo-x2", design="cells by hand", hub={"repo": "org/demo-x2", "revision": None},
                  speed=[{"how": "engine", "device_name": "a cpu", "precision": "float32", "input": "64x36",
                          "output": "128x72", "ms_per_frame": 1.0, "fps": 1000.0, "date": "2026-12-04",
                          "command": "upscale bench --model demo-x2 --against demo-x2-baseline",
                          "against": {"demo-x2-baseline": 2.0}}])
    (old / CONFIG).write_text(json.dumps(config))
    other = make_tiny_model(tmp_path / "demo-x2-baseline")
    other_config = json.loads((other / CONFIG).read_text())
    (other / CONFIG).write_text(json.dumps({**other_config, "note": "shipped as demo-x2 before 0.2"}))
    weights = (old / "model.safetensors").read_bytes()

    rename.main("demo-x2", "demo-x2-hand", "shipped as demo-x2 until session 9")

    assert not old.exists() and (tmp_path / "demo-x2-hand" / "model.safetensors").read_bytes() == weights
    renamed = read_config(tmp_path / "demo-x2-hand")
    assert renamed["name"] == "demo-x2-hand" and renamed["hub"]["repo"] == "org/demo-x2-hand"
    assert renamed["design"] == "cells by hand; shipped as demo-x2 until session 9"
    # whole names only: the baseline it was timed against keeps its name
    assert renamed["speed"][0]["command"] == "upscale bench --model demo-x2-hand --against demo-x2-baseline"
    assert renamed["speed"][0]["against"] == {"demo-x2-baseline": 2.0}
    assert "# demo-x2-hand" in (tmp_path / "demo-x2-hand" / "README.md").read_text()
    # another model's mention is history: listed for review, not rewritten
    assert read_config(other)["note"] == "shipped as demo-x2 before 0.2"
    assert "review: demo-x2-baseline/config.json" in capsys.readouterr().out.replace(f"{tmp_path.name}/", "")


def test_a_rename_onto_an_existing_model_is_refused(tmp_path, monkeypatch):
    import pytest

    rename = load_rename()
    monkeypatch.setattr(rename, "WEIGHTS", tmp_path)
    make_tiny_model(tmp_path / "a-x2")
    make_tiny_model(tmp_path / "b-x2")
    with pytest.raises(SystemExit, match="no weights/b-x2"):
        rename.main("a-x2", "b-x2", "note")
    assert read_config(tmp_path / "a-x2")["name"] != "b-x2" and (tmp_path / "b-x2").is_dir()
