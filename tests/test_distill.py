"""Distillation from a self-ensemble: the teacher's targets line up with the patches, the loss mixes the two
targets as weighted, and the comparison script trains its arms on from one model's weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from trinas.data import PatchSampler
from trinas.distill import distillation_loss, teach
from trinas.net import TriNet
from trinas.space import baseline_genotype
from trinas.symmetry import DIHEDRAL, self_ensemble, transform, untransform
from trinas.train import TrainConfig, train

from tests.test_screen_scripts import recipe, tiny_model, tiny_sets
from tests.test_train import pairs, tiny


def random_net(seed: int = 0) -> TriNet:
    torch.manual_seed(seed)
    net = TriNet(baseline_genotype(2, 8, 1))
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.1)
    return net.eval()


def test_every_symmetry_is_undone_by_its_inverse_and_the_ensemble_averages_all_eight():
    x = torch.rand(2, 3, 5, 7)
    assert all(torch.equal(untransform(transform(x, t, f), t, f), x) for t, f in DIHEDRAL)
    assert len({transform(x, t, f).flatten()[:9].tolist().__repr__() for t, f in DIHEDRAL}) == 8
    net = random_net()
    with torch.inference_mode():
        expected = torch.stack([untransform(net(transform(x, t, f)), t, f) for t, f in DIHEDRAL]).mean(0)
        assert torch.allclose(self_ensemble(net, x), expected, atol=1e-6)
        assert not torch.allclose(self_ensemble(net, x), net(x), atol=1e-3)  # a random net is not symmetric


def test_the_teacher_targets_are_its_self_ensemble_of_each_whole_image_as_uint8():
    data = pairs(count=2, side=12)
    net = random_net()
    teach(net, data, log=lambda _: None)
    for pair in data:
        assert pair.target.shape == pair.hr.shape and pair.target.dtype == np.uint8
        with torch.inference_mode():
            x = torch.from_numpy(pair.lr).permute(2, 0, 1)[None].float() / 255
            expected = self_ensemble(net, x).clamp(0, 1).mul(255).round().byte()[0].permute(1, 2, 0).numpy()
        assert np.array_equal(pair.target, expected)


def test_patches_with_targets_are_the_same_patches_and_the_targets_crop_where_the_hr_does():
    data = pairs()
    for pair in data:
        pair.target = 255 - pair.hr  # any picture aligned with the HR one
    sampler = PatchSampler(data, 2, 8, seed=3)
    lr, hr = sampler.batch(5, 4)
    lr2, hr2, target = sampler.batch_with_targets(5, 4)
    assert torch.equal(lr, lr2) and torch.equal(hr, hr2)
    assert torch.allclose(target, 1 - hr, atol=1e-6)  # cropped and turned exactly as the HR patches were
    with pytest.raises(ValueError, match="no teacher outputs"):
        PatchSampler(pairs(), 2, 8).batch_with_targets(0, 2)


def test_the_loss_weighs_the_teacher_by_its_share():
    out, hr, target = torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5)
    l1 = torch.nn.functional.l1_loss
    assert distillation_loss(l1, out, hr, target, 0.0).item() == pytest.approx(1.0)
    assert distillation_loss(l1, out, hr, target, 1.0).item() == pytest.approx(0.5)
    assert distillation_loss(l1, out, hr, target, 0.25).item() == pytest.approx(0.875)
    with pytest.raises(ValueError, match="share of the loss"):
        TrainConfig(scale=2, distill=1.5)


def test_distilling_towards_the_ground_truth_itself_is_plain_training_and_another_target_is_not(tmp_path):
    """The plumbing is exact: with the HR image as the 'teacher' every step is the plain step."""
    config = dict(scale=2, steps=4, batch=2, patch=8, val_every=4, warmup=1)
    plain, same, other = tiny(), tiny(), tiny()
    train(plain, PatchSampler(pairs(), 2, 8), [], TrainConfig(**config), tmp_path / "a.pt", log=lambda _: None)
    data = pairs()
    for pair in data:
        pair.target = pair.hr.copy()
    train(same, PatchSampler(data, 2, 8), [], TrainConfig(**config, distill=0.5), tmp_path / "b.pt",
          log=lambda _: None)
    for pair in data:
        pair.target = 255 - pair.hr
    train(other, PatchSampler(data, 2, 8), [], TrainConfig(**config, distill=0.5), tmp_path / "c.pt",
          log=lambda _: None)
    for a, b, c in zip(plain.parameters(), same.parameters(), other.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    assert any(not torch.allclose(a, c, atol=1e-4) for a, c in zip(plain.parameters(), other.parameters()))


def test_the_recipe_ablation_trains_every_arm_on_from_a_model_and_adds_a_distill_arm(tmp_path):
    model = tiny_model(tmp_path)
    args = tiny_sets(tmp_path) + ["--out", str(tmp_path / "out"), "--model", model, "--init", model,
                                  "--teacher", model, "--variants", "plain", "distill", "--distill", "0.7"]
    recipe.main(args)
    table = json.loads((tmp_path / "out" / "recipe.json").read_text())
    plain, distill = (r["schedule"] for r in table["rows"])
    assert plain["init"] == model and distill == {**plain, "distill": 0.7, "teacher": model}
    text = (tmp_path / "out" / "recipe.md").read_text()
    assert f"from {model}'s weights" in text and f"| {model}, before |" in text and "| distill |" in text
    from_scratch = args[:args.index("--init")] + args[args.index("--init") + 2:]
    with pytest.raises(SystemExit, match="another schedule"):  # another comparison: not the old results
        recipe.main(from_scratch)


def test_the_training_command_refuses_a_weight_without_a_teacher_and_a_teacher_of_another_scale(tmp_path, capsys):
    from trinas.export import save_model
    from trinas.train import main

    common = ["--scale", "2", "--train", str(tmp_path), "--work", str(tmp_path / "w")]
    with pytest.raises(SystemExit):
        main(common + ["--distill", "0.5"])
    assert "--distill needs --teacher" in capsys.readouterr().err
    save_model(TriNet(baseline_genotype(3, 8, 1)), tmp_path / "x3")
    with pytest.raises(SystemExit):
        main(common + ["--teacher", str(tmp_path / "x3")])
    assert "is a x3 model, not x2" in capsys.readouterr().err


def test_a_comparison_names_its_starting_model_relative_to_the_working_folder(tmp_path, monkeypatch):
    """Stamps and results name `weights/...`, not one machine's checkout, so the same command resumes elsewhere."""
    from tests.test_controls import load_script

    screened = load_script("screened_network")
    model = tiny_model(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert screened.model_folder(model) == "model"
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert screened.model_folder(model) == str((tmp_path / "model").resolve())  # outside: the whole path
