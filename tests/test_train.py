"""Training: the recipe's parts do what they say, a run resumes to the same weights, and the curve tells when
it has stopped improving."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from trinas.data import PatchSampler, Pair
from trinas.net import TriNet
from trinas.space import baseline_genotype
from trinas.train import TrainConfig, saturation, train


def pairs(count: int = 3, side: int = 24, scale: int = 2) -> list[Pair]:
    rng = np.random.default_rng(0)
    hrs = [rng.integers(0, 256, (side * scale, side * scale, 3), dtype=np.uint8) for _ in range(count)]
    return [Pair(hr[::scale, ::scale].copy(), hr) for hr in hrs]


def tiny() -> TriNet:
    torch.manual_seed(0)
    return TriNet(baseline_genotype(2, width=8, cells=1))


RECIPE = dict(scale=2, steps=8, batch=2, patch=8, val_every=4, warmup=2, ema=0.9, late_from=0.5,
              late_loss="charbonnier", late_patch=12)


def test_a_stopped_run_resumes_to_the_same_weights_and_average(tmp_path):
    config = TrainConfig(**RECIPE)
    sampler = PatchSampler(pairs(), 2, 8)
    whole = tiny()
    train(whole, sampler, [], config, tmp_path / "whole.pt", log=lambda _: None)

    halves = tiny()
    train(halves, sampler, [], TrainConfig(**{**RECIPE, "steps": 8}), tmp_path / "halves.pt",
          time_budget_s=-1, log=lambda _: None)  # stops after its first step, as a kill would
    state = torch.load(tmp_path / "halves.pt", weights_only=False)
    assert state["step"] == 1 and state["average"] is not None
    resumed = tiny()
    result = train(resumed, sampler, [], config, tmp_path / "halves.pt", log=lambda _: None)
    assert result["done"]
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_the_exported_weights_are_the_average(tmp_path):
    model = tiny()
    train(model, PatchSampler(pairs(), 2, 8), [], TrainConfig(**RECIPE), tmp_path / "c.pt", log=lambda _: None)
    state = torch.load(tmp_path / "c.pt", weights_only=False)
    exported = model.state_dict()
    assert all(torch.equal(exported[k], v) for k, v in state["average"].items())
    assert any(not torch.equal(exported[k], v) for k, v in state["model"].items())  # not the raw weights


def test_the_late_part_of_the_run_switches_loss_and_patch():
    config = TrainConfig(**RECIPE)
    assert [config.loss_at(s) for s in (0, 3, 4, 7)] == ["l1", "l1", "charbonnier", "charbonnier"]
    assert [config.patch_at(s) for s in (0, 3, 4, 7)] == [8, 8, 12, 12]
    lr, hr = PatchSampler(pairs(), 2, 8).batch(5, 2, config.patch_at(5))
    assert lr.shape == (2, 3, 12, 12) and hr.shape == (2, 3, 24, 24)
    with pytest.raises(ValueError, match="late loss"):
        TrainConfig(scale=2, late_loss="perceptual")


def test_bf16_training_runs_the_forward_pass_in_bf16_and_keeps_fp32_weights(tmp_path):
    from trinas.train import forward_in

    model = tiny()
    x = torch.rand(2, 3, 8, 8)
    fp32, bf16 = forward_in(model, x, "fp32"), forward_in(model, x, "bf16")
    assert fp32.dtype == bf16.dtype == torch.float32 and not torch.equal(fp32, bf16)
    assert torch.allclose(fp32, bf16, atol=0.05)
    config = TrainConfig(**{**RECIPE, "precision": "bf16"})
    result = train(model, PatchSampler(pairs(), 2, 8), [], config, tmp_path / "c.pt", log=lambda _: None)
    assert result["done"] and {p.dtype for p in model.parameters()} == {torch.float32}
    assert torch.load(tmp_path / "c.pt", weights_only=False)["config"]["precision"] == "bf16"
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(scale=2, precision="fp16")


def test_saturation_is_the_gain_over_the_last_fifth():
    history = [{"step": s, "val_psnr": v} for s, v in ((100, 30.0), (400, 31.0), (800, 31.50), (1000, 31.51))]
    assert saturation(history) == pytest.approx(0.01)  # 800 -> 1000: under 0.02 dB, saturated
    assert saturation(history[:1]) is None
    assert saturation([{"step": 1000, "val_psnr": float("nan")}] + history[-1:]) is None


def test_a_screen_schedule_carries_the_recipe_into_training(tmp_path, monkeypatch):
    """The fair-comparison unit (`trinas.screen`) trains with the schedule's recipe parts, nothing else."""
    import trinas.screen as screen_module
    from trinas.screen import Schedule, ScreenData

    seen = []
    monkeypatch.setattr(screen_module, "train", lambda model, sampler, val, config, *a, **k:
                        seen.append(config) or {"step": config.steps})
    monkeypatch.setattr(screen_module, "score", lambda *a, **k: type("S", (), {"mean": lambda self, key: 0.0})())
    schedule = Schedule(steps=5, batch=2, patch=8, ema=0.99, late_loss="l2", late_patch=12, late_from=0.6,
                        precision="bf16")
    screen_module.screen(baseline_genotype(2, width=8, cells=1), 0, schedule, ScreenData(pairs(), [], []),
                         tmp_path / "run")
    assert (seen[0].ema, seen[0].late_loss, seen[0].late_patch, seen[0].late_from, seen[0].precision) == \
        (0.99, "l2", 12, 0.6, "bf16")
    assert schedule.largest_patch == 12


def test_the_model_folder_shows_its_training_curve(tmp_path):
    from PIL import Image

    from trinas.export import read_config
    from trinas.train import main

    rng = np.random.default_rng(0)
    for folder, count in (("train", 3), ("val", 1)):
        (tmp_path / folder).mkdir()
        for i in range(count):
            smooth = np.kron(rng.integers(0, 256, (6, 6, 3)), np.ones((8, 8, 1))).astype(np.uint8)
            Image.fromarray(smooth).save(tmp_path / folder / f"{i}.png")
    genotype = tmp_path / "g.json"
    genotype.write_text(json.dumps(baseline_genotype(2, width=8, cells=1).to_dict()))
    common = ["--scale", "2", "--train", str(tmp_path / "train"), "--val", str(tmp_path / "val"), "--genotype",
              str(genotype), "--work", str(tmp_path / "work"), "--steps", "4", "--val-every", "2", "--batch", "2",
              "--patch", "8", "--threads", "1"]
    main([*common, "--out", str(tmp_path / "model"), "--precision", "bf16"])
    card = (tmp_path / "model" / "README.md").read_text()
    assert "precision: bf16 autocast (fp32 weights)" in card
    assert (tmp_path / "model" / "curves.png").is_file()
    assert "![validation PSNR and training loss over the run](curves.png)" in card
    assert [r["step"] for r in read_config(tmp_path / "model")["training"]["history"]] == [2, 4]
    # from the checkpoint: the same curve
    main([*common, "--out", str(tmp_path / "again"), "--precision", "bf16", "--export-only"])
    assert (tmp_path / "again" / "curves.png").read_bytes() == (tmp_path / "model" / "curves.png").read_bytes()
    gains = [read_config(tmp_path / folder)["training"]["last_fifth_gain_db"] for folder in ("model", "again")]
    assert gains[0] == gains[1]  # and the same verdict on saturation


def test_a_model_folder_starts_a_run_of_its_own_network_exactly(tmp_path):
    """`--genotype FOLDER --init FOLDER`: the run starts from the model as it is (folded re-parameterisable
    operations unfolded into their branches), so a run that does not move the weights exports the same model."""
    from PIL import Image

    from trinas.export import load_model, read_config, save_model
    from trinas.space import Cell, Genotype, Upsample
    from trinas.train import main

    rng = np.random.default_rng(0)
    (tmp_path / "train").mkdir()
    for i in range(2):
        smooth = np.kron(rng.integers(0, 256, (6, 6, 3)), np.ones((8, 8, 1))).astype(np.uint8)
        Image.fromarray(smooth).save(tmp_path / "train" / f"{i}.png")
    torch.manual_seed(0)
    start = TriNet(Genotype(2, 8, (Cell(("ecb3x3", "conv3x3"), (8, 8)), Cell(("ecb3x3",), (8,)), Upsample(2))))
    for p in start.parameters():
        torch.nn.init.normal_(p, std=0.05)
    search_command = "upscale search --scale 2 --prune ..."
    save_model(start, tmp_path / "start", searched=True, search={"budget_madds": 1000},
               training={"command": search_command, "steps": 7, "pruned": {"unpruned": "8w ...", "at": "64x64",
                                                                         "device": "cpu", "predicted_ms_before": 2.0,
                                                                         "predicted_ms_after": 1.0,
                                                                         "fine_tune_steps": 2}})
    main(["--scale", "2", "--train", str(tmp_path / "train"), "--genotype", str(tmp_path / "start"), "--init",
          str(tmp_path / "start"), "--work", str(tmp_path / "work"), "--steps", "1", "--lr", "0", "--batch", "1",
          "--patch", "8", "--threads", "1", "--out", str(tmp_path / "again")])
    x = torch.rand(1, 3, 9, 7)
    with torch.no_grad():
        assert torch.allclose(load_model(tmp_path / "again")(x), load_model(tmp_path / "start")(x), atol=1e-5)
    # Its card still says how the network was made: searched, with the commands before this run.
    config = read_config(tmp_path / "again")
    assert config["searched"] and config["search"] == {"budget_madds": 1000}
    assert config["training"]["before"] == [{"command": search_command, "steps": 7,
                                             "pruned": config["training"]["before"][0]["pruned"]}]
    card = (tmp_path / "again" / "README.md").read_text()
    assert "found by the TriNAS trilevel architecture search" in card and search_command in card
    assert "python -m trinas.train" in card

    # Another network that only takes some of its weights was not found by that search: it says where its
    # weights came from and how it was chosen.
    grown = tmp_path / "grown.json"
    grown.write_text(json.dumps(Genotype(3, 8, (Cell(("ecb3x3", "conv3x3"), (8, 8)), Cell(("ecb3x3",), (8,)),
                                                Cell(("ecb3x3",), (8,))), tail="shuffle").to_dict()))
    main(["--scale", "3", "--train", str(tmp_path / "train"), "--genotype", str(grown), "--init",
          str(tmp_path / "start"), "--work", str(tmp_path / "work3"), "--steps", "1", "--batch", "1",
          "--patch", "8", "--threads", "1", "--out", str(tmp_path / "x3"), "--design", "its cells and one more."])
    config = read_config(tmp_path / "x3")
    assert "searched" not in config and config["derived_from"] == "start"
    assert config["training"]["before"][0]["command"] == search_command  # the weights' history still shows
    card = (tmp_path / "x3" / "README.md").read_text()
    assert "found by the TriNAS" not in card and "baseline" not in card
    assert ("a network chosen by hand, not by a search of its own: its cells and one more. It started from the "
            "weights of `start`.") in card
    # trained on, the same network keeps saying so
    main(["--scale", "3", "--train", str(tmp_path / "train"), "--genotype", str(tmp_path / "x3"), "--init",
          str(tmp_path / "x3"), "--work", str(tmp_path / "work3b"), "--steps", "1", "--batch", "1",
          "--patch", "8", "--threads", "1", "--out", str(tmp_path / "x3b")])
    again = read_config(tmp_path / "x3b")
    assert (again["design"], again["derived_from"]) == (config["design"], "start") and "searched" not in again
    # grown again, it still names the model at the start of the chain, with every run between in its history
    longer = tmp_path / "longer.json"
    longer.write_text(json.dumps(Genotype(3, 8, (Cell(("ecb3x3", "conv3x3"), (8, 8)), *[Cell(("ecb3x3",), (8,))] * 3),
                                          tail="shuffle").to_dict()))
    main(["--scale", "3", "--train", str(tmp_path / "train"), "--genotype", str(longer),
          "--init", str(tmp_path / "x3b"), "--work", str(tmp_path / "work3c"), "--steps", "1", "--batch", "1",
          "--patch", "8", "--threads", "1", "--out", str(tmp_path / "x3c"), "--design", "x3b with one more cell."])
    grown_again = read_config(tmp_path / "x3c")
    assert grown_again["derived_from"] == "start" and grown_again["design"] == "x3b with one more cell."
    assert [b["command"] for b in grown_again["training"]["before"]][-1] == again["training"]["command"]


def test_a_resumed_run_averages_the_loss_over_the_steps_it_ran(tmp_path, monkeypatch):
    """The curve's first point after a resume is the mean loss of the steps run since, not their sum over the
    whole stretch since the last point (which showed a resumed run's loss falling by the share it missed)."""
    import trinas.train as training

    losses: list[float] = []
    l1 = training.LOSSES["l1"]
    monkeypatch.setitem(training.LOSSES, "l1", lambda x, y: losses.append(float(l1(x, y).detach())) or l1(x, y))
    config = TrainConfig(scale=2, steps=4, batch=2, patch=8, val_every=4, warmup=2)
    sampler = PatchSampler(pairs(), 2, 8)
    train(tiny(), sampler, [], config, tmp_path / "c.pt", time_budget_s=-1, log=lambda _: None)  # one step
    result = train(tiny(), sampler, [], config, tmp_path / "c.pt", log=lambda _: None)  # steps 2 to 4
    assert len(losses) == 4
    assert result["history"][0]["loss"] == pytest.approx(sum(losses[1:]) / 3)
