"""The packaged models: present in the installed package, loadable offline, and true to their cards."""

from __future__ import annotations

from pathlib import Path

import pytest

from trinas.export import MODEL_FILES, load_model, read_config
from upscale.evaluation import evaluate, summary
from upscale.models import packaged_for_scale, packaged_models, weights_root
from upscale import Upscaler

VAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "val"
PACKAGED = ["trinas-x2", "trinas-x3", "trinas-x4"]


@pytest.mark.parametrize("name", PACKAGED)
def test_packaged_model_is_complete_and_loads(name):
    folder = packaged_models()[name]
    assert all((folder / f).is_file() for f in MODEL_FILES)
    model = load_model(folder)
    assert f"x{model.scale}" in name and packaged_for_scale(model.scale) == name
    card = (folder / "README.md").read_text()
    assert "baseline" in card and "not a searched model" in card


def test_weights_travel_with_an_installed_copy():
    """Installed from a wheel, the weights are inside the package; from a checkout, in weights/."""
    import upscale

    root = weights_root()
    package = Path(upscale.__file__).resolve().parent
    if "site-packages" in str(package):
        assert root.resolve().is_relative_to(package)
    assert set(PACKAGED) <= set(packaged_models())


@pytest.mark.slow
@pytest.mark.skipif(not VAL.is_dir(), reason="needs ../shared/data/val")
@pytest.mark.parametrize("name", PACKAGED)
def test_card_numbers_are_reproduced_by_eval(name):
    recorded = read_config(packaged_models()[name])["metrics"]
    assert set(recorded) == {"Set5", "Set14"}
    measured = summary(evaluate(Upscaler.from_pretrained(name, device="cpu"), [VAL / "Set5", VAL / "Set14"]))
    for dataset in ("Set5", "Set14"):
        assert measured[dataset]["psnr"] == pytest.approx(recorded[dataset]["psnr"], abs=0.01)
        assert measured[dataset]["ssim"] == pytest.approx(recorded[dataset]["ssim"], abs=1e-4)
        # and the model clearly beats bicubic, as its card says
        assert measured[dataset]["psnr"] > measured[dataset]["bicubic_psnr"] + 1.0
