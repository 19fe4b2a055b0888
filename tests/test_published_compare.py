"""The published anchors are rebuilt to their published size, and the comparison runs end to end."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from published_compare import main  # noqa: E402
from reference_networks import CARNM, FORMS, reference_network  # noqa: E402


def params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_outputs_are_the_scale_times_the_input(scale):
    for name, forms in FORMS.items():
        for form in forms:
            net = reference_network(name, scale, form)
            with torch.inference_mode():
                y = net(torch.rand(1, net.channels, 10, 12))
            assert y.shape == (1, net.channels, 10 * scale, 12 * scale), (name, form)


def test_sizes_match_the_papers():
    """CARN-M's 412K parameters count its shared body once and the x2, x3 and x4 upsamplers together; FSRCNN
    has about 12K."""
    body = params(CARNM(2)) - params(CARNM(2).upsample)
    carn_m = body + sum(params(CARNM(scale).upsample) for scale in (2, 3, 4))
    assert abs(carn_m - 412_000) / 412_000 < 0.01, carn_m
    assert 12_000 <= params(reference_network("FSRCNN", 4)) <= 13_000


def test_prints_a_table_per_scale_with_ours_beside_them(capsys):
    main(["--frame", "64x48", "--scale", "4", "--model", "trinas-x4-rt-lite", "--rounds", "1", "--threads", "1"])
    out = capsys.readouterr().out
    assert "| `trinas-x4-rt-lite` |" in out and "| CARN-M |" in out and "| 1.00x |" in out
    fsrcnn = next(line for line in out.splitlines() if line.startswith("| FSRCNN |"))
    assert fsrcnn.endswith(("| sub-pixel, channels-last |", "| sub-pixel, contiguous |",
                            "| transposed conv, channels-last |", "| transposed conv, contiguous |"))
    assert "30.79 / 27.74 | measured" in out and "31.92 / 28.42 | published (trained on DIV2K)" in out
