"""The packaged models: present in the installed package, loadable offline, and true to their cards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trinas.export import MODEL_FILES, load_model, read_config
from upscale.evaluation import evaluate, summary
from upscale.models import packaged_for_scale, packaged_models, weights_root
from upscale import Upscaler

VAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "val"
ROUTES = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "routes-epyc-zen3-2026-12-05-s30.json"
PACKAGED = ["trinas-x2", "trinas-x2-searched", "trinas-x2-baseline", "trinas-x3", "trinas-x3-baseline", "trinas-x4",
            "trinas-x4-baseline", "trinas-x4-rt", "trinas-x4-rt-lite"]
BASELINES = {2: "trinas-x2-baseline", 3: "trinas-x3-baseline", 4: "trinas-x4-baseline"}


@pytest.mark.parametrize("name", PACKAGED)
def test_packaged_model_is_complete_and_loads(name):
    folder = packaged_models()[name]
    assert all((folder / f).is_file() for f in MODEL_FILES)
    model = load_model(folder)
    assert f"x{model.scale}" in name
    card = (folder / "README.md").read_text()
    config = read_config(folder)
    if config.get("searched"):
        assert "found by the TriNAS trilevel architecture search" in card
    elif config.get("design"):  # chosen by hand from searched parts, and its card says so
        assert "chosen by hand, not by a search of its own" in card and config["derived_from"] in PACKAGED
    else:
        assert name == BASELINES[model.scale] and "baseline" in card and "not a searched model" in card


def test_each_scale_defaults_to_its_best_packaged_model_on_set5():
    for scale, names in ((2, ("trinas-x2", "trinas-x2-searched", "trinas-x2-baseline")),
                         (3, ("trinas-x3", "trinas-x3-baseline")),
                         (4, ("trinas-x4", "trinas-x4-baseline", "trinas-x4-rt", "trinas-x4-rt-lite"))):
        set5 = {n: read_config(packaged_models()[n])["metrics"]["Set5"]["psnr"] for n in names}
        assert packaged_for_scale(scale) == max(set5, key=set5.get) == f"trinas-x{scale}"


def test_the_x2_model_is_no_slower_than_the_searched_x2():
    """Issue 13's x2 speed target, as recorded by `upscale bench --model trinas-x2 --output 1280x720 --against
    trinas-x2-searched --record` (both in one run), within the machine's noise (5%), at no more multiply-adds."""
    x2, searched = (read_config(packaged_models()[n]) for n in ("trinas-x2", "trinas-x2-searched"))
    assert x2["madds_per_output_pixel"] <= searched["madds_per_output_pixel"]
    speed = [e for e in x2.get("speed", []) if "trinas-x2-searched" in (e.get("against") or {})]
    assert speed and all(e["output"] == "1280x720" for e in speed)
    assert all(e["ms_per_frame"] <= 1.05 * e["against"]["trinas-x2-searched"] for e in speed)


@pytest.mark.parametrize("name", ["trinas-x3", "trinas-x4"])
def test_the_x3_and_x4_models_take_at_most_60_percent_of_the_x2_models_time(name):
    """Issue 13's speed target, as recorded by `upscale bench --model NAME --output 1280x720 --against
    trinas-x2-searched --record`: both timed in one run on one 1280x720 output frame."""
    speed = [e for e in read_config(packaged_models()[name]).get("speed", [])
             if "trinas-x2-searched" in (e.get("against") or {})]
    frames = [tuple(int(v) for v in e["output"].split("x")) for e in speed]  # x3: 427x240 in makes 1281x720
    assert speed and all(abs(w - 1280) < 3 and h == 720 for w, h in frames)
    assert all(e["ms_per_frame"] <= 0.6 * e["against"]["trinas-x2-searched"] for e in speed)


def _real_time_x4(name: str) -> dict:
    """Issue 12's targets as `name`'s config records them, returning the config: 0.8 dB or more above bicubic on
    Set14 (`upscale eval --record`; the slow test below reproduces the PSNR); 320x180 -> 1280x720 at 25 frames
    per second or more on 2 CPU cores in fp32 on every machine recorded, end to end as a user runs it
    (`benchmarks/frame_folder_fps.py --record`); and pruned from the first `trinas-x4-rt` (`jobs/x4-rt-kd/model`)
    by `upscale prune`, whose command the card gives."""
    config = read_config(packaged_models()[name])
    set14 = config["metrics"]["Set14"]
    assert set14["psnr"] >= set14["bicubic_psnr"] + 0.8
    end_to_end = [e for e in config["speed"] if e["how"] == "end to end" and e["precision"] == "float32"]
    assert end_to_end and all(e["input"] == "320x180" and e["output"] == "1280x720" and e["threads"] == 2
                              and e["device"] == "cpu" for e in end_to_end)
    assert min(e["fps"] for e in end_to_end) >= 25
    pruned = config["training"]["before"][-1]["pruned"]
    assert pruned["from"] == "jobs/x4-rt-kd/model"
    assert pruned["command"].startswith("upscale prune jobs/x4-rt-kd/model ")
    return config


def test_the_real_time_x4_meets_its_targets_as_recorded():
    """Since session 29 `trinas-x4-rt` is the first one (which made 19.4-20.3 frames/s on the Zen 3 EPYC) pruned
    to that machine, after the latency-budgeted search that found the network."""
    config = _real_time_x4("trinas-x4-rt")
    search = config["training"]["before"][0]
    assert config["searched"] and search["pruned"]["latency_ms"] == 24.0  # the search's own budget


def test_the_lighter_real_time_x4_meets_its_targets_on_every_machine_it_was_measured_on():
    """The first `trinas-x4-rt` pruned to 0.43x its time on a Zen 3 EPYC where it made 12.4 frames/s: real-time
    there and on every machine recorded since."""
    _real_time_x4("trinas-x4-rt-lite")


def test_the_default_x2_is_better_and_cheaper_than_the_x2_baseline():
    """The default x2 model scores higher on both sets at lower multiply-adds (the recorded numbers, which the
    slow test below reproduces with `upscale eval`). This is a claim about the shipped models only: the
    searched network trained 12x longer. Whether the search beats chance is `benchmarks/search_controls.py`'s."""
    searched, baseline = (read_config(packaged_models()[n]) for n in (packaged_for_scale(2), "trinas-x2-baseline"))
    assert searched["madds_per_output_pixel"] <= baseline["madds_per_output_pixel"]
    for dataset in ("Set5", "Set14"):
        assert searched["metrics"][dataset]["psnr"] > baseline["metrics"][dataset]["psnr"]


def test_weights_travel_with_an_installed_copy():
    """Installed from a wheel, the weights are inside the package; from a checkout, in weights/."""
    import upscale

    root = weights_root()
    package = Path(upscale.__file__).resolve().parent
    if "site-packages" in str(package):
        assert root.resolve().is_relative_to(package)
    assert set(PACKAGED) == set(packaged_models())  # every packaged model is checked here


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


def routes_to(factor: int) -> list[dict]:
    """Every route to the factor as `benchmarks/routes.py --time 1280x720 --json` recorded it (scored and timed
    as a user runs it, all in one run)."""
    return [row for row in json.loads(ROUTES.read_text()) if row["factor"] == factor]


def recorded_routes(factor: int) -> tuple[dict, list[dict]]:
    """The factor's default and the recorded routes to the factor that were faster than it."""
    rows = routes_to(factor)
    own = next(row for row in rows if row["own"])
    return own, [row for row in rows if row is not own and row["ms"] < own["ms"]]


def recorded_as_shipped(row: dict, config: dict) -> bool:
    """The record scored the model its card describes (a retrained model needs the routes timed again)."""
    return all(row[dataset] == pytest.approx(config["metrics"][dataset]["psnr"], abs=0.005)
               for dataset in ("Set5", "Set14"))


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_a_scales_default_beats_every_cheaper_route_as_recorded(factor):
    """Issue 13: a user asking for x2, x3 or x4 gets more from the scale's default than from any faster way to
    that factor (a smaller model, or another scale's model and a resize). The record is of the shipped models:
    its default is today's, with its card's PSNR. Dearer routes may score higher (at x3, the x4 model and a
    shrink); the README's routes table shows them with their time."""
    own, cheaper = recorded_routes(factor)
    assert own["model"] == packaged_for_scale(factor)
    assert recorded_as_shipped(own, read_config(packaged_models()[own["model"]]))
    assert cheaper, "a factor with no faster route was timed wrongly"
    for route in cheaper:
        assert all(own[dataset] > route[dataset] for dataset in ("Set5", "Set14")), route["route"]


SAME_COST = 0.95  # a route timed within 5% of a model is not cheaper: these machines repeat themselves to about that


@pytest.mark.parametrize("name", [name for name in PACKAGED if name not in BASELINES.values()])
def test_every_packaged_model_beats_the_clearly_cheaper_routes_as_recorded(name):
    """Issue 13 asks it of every packaged model, not only the defaults: no route to the model's scale that ran
    in under 95% of its time scores as high on either set. The record must hold the model as shipped (its
    card's PSNR). The baselines are left out by design: the searched models beat them at less time."""
    config = read_config(packaged_models()[name])
    rows = routes_to(config["scale"])
    own = next((row for row in rows if row["route"] == name), None)
    assert own is not None, f"{name} is not in {ROUTES.name}: run benchmarks/routes.py again"
    assert recorded_as_shipped(own, config)
    for route in rows:
        if route["ms"] < SAME_COST * own["ms"]:
            assert all(own[dataset] > route[dataset] for dataset in ("Set5", "Set14")), route["route"]


@pytest.mark.slow
@pytest.mark.skipif(not VAL.is_dir(), reason="needs ../shared/data/val")
@pytest.mark.parametrize("factor", [2, 3, 4])
def test_a_scales_default_beats_the_cheaper_routes_through_other_scales(factor):
    """The recorded routes through another scale's model that were faster than the factor's default, scored
    again with `upscale eval --outscale`: the default's card is above each on both sets."""
    own = read_config(packaged_models()[packaged_for_scale(factor)])["metrics"]
    for route in recorded_routes(factor)[1]:
        upscaler = Upscaler.from_pretrained(route["model"], device="cpu")
        if upscaler.scale == factor:
            continue  # a model of the factor itself: its card holds its scores
        measured = summary(evaluate(upscaler, [VAL / "Set5", VAL / "Set14"], factor=factor))
        for dataset in ("Set5", "Set14"):
            assert own[dataset]["psnr"] > measured[dataset]["psnr"], (route["route"], dataset)
