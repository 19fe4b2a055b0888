"""ONNX export: the folded network, dynamic batch and size, and ONNX Runtime agreeing with PyTorch."""

from __future__ import annotations

import torch
from click.testing import CliRunner

from trinas.export import check_onnx, load_model, save_model
from trinas.net import TriNet
from trinas.space import Cell, Genotype, Upsample
from upscale.cli import main


def exported(tmp_path, genotype: Genotype):
    """A random network of the genotype saved as tmp_path/model and exported by `upscale models export` (which
    must succeed): the command's result and the ONNX file."""
    torch.manual_seed(0)
    net = TriNet(genotype)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.1)
    save_model(net, tmp_path / "model")
    out = tmp_path / "model.onnx"
    result = CliRunner().invoke(main, ["models", "export", str(tmp_path / "model"), "--onnx", str(out)])
    assert result.exit_code == 0, result.output
    return result, out


def test_export_matches_pytorch_at_any_size_and_refuses_to_overwrite(tmp_path):
    genotype = Genotype(3, 8, (Cell(("rep3x3", "spanatt3x3"), (8, 8)), Cell(("sepconv3x3", "resblock3x3"), (8, 8)),
                               Upsample(3)))
    result, out = exported(tmp_path, genotype)
    assert "matches PyTorch" in result.output and out.stat().st_size > 0
    assert check_onnx(load_model(tmp_path / "model"), out, sizes=((3, 17, 40), (1, 64, 9))) <= 1e-4
    again = CliRunner().invoke(main, ["models", "export", str(tmp_path / "model"), "--onnx", str(out)])
    assert again.exit_code != 0 and "--overwrite" in again.output
    wrong = CliRunner().invoke(main, ["models", "export", str(tmp_path / "model"), "--onnx", str(tmp_path / "m.bin")])
    assert wrong.exit_code != 0 and ".onnx" in wrong.output


def test_a_shuffle_tail_network_exports_at_any_size(tmp_path):
    """The shuffle tail's skip is a broadcast into the sub-pixel channels (`add_to_subpixels`), written in
    place at inference: the exported graph computes it at every size."""
    _, out = exported(tmp_path, Genotype(4, 8, (Cell(("ecb3x3", "conv3x3"), (8, 8)),), tail="shuffle"))
    assert check_onnx(load_model(tmp_path / "model"), out, sizes=((2, 17, 40), (1, 9, 31))) <= 1e-4
