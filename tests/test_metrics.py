"""The evaluation protocol reproduces the published bicubic figures, so our PSNR compares with the literature."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trinas.evaluate import load_benchmark
from trinas.imresize import imresize
from trinas.metrics import psnr, ssim

SET5 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "val" / "Set5"
PUBLISHED_BICUBIC_SET5 = {2: 33.66, 3: 30.39, 4: 28.42}  # dB, Y channel, the standard tables


@pytest.mark.skipif(not SET5.is_dir(), reason="needs ../shared/data/val/Set5")
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_on_set5_matches_the_published_tables(scale):
    images = load_benchmark(SET5, scale)
    assert len(images) == 5
    ours = np.mean([psnr(imresize(i.lr, scale=scale), i.hr, scale) for i in images])
    assert abs(ours - PUBLISHED_BICUBIC_SET5[scale]) <= 0.03


def test_imresize_properties():
    """Output sizes follow MATLAB's ceil rule, and constants stay constant (weights sum to one)."""
    assert imresize(np.zeros((7, 9)), scale=0.5).shape == (4, 5)
    assert imresize(np.zeros((7, 9)), size=(3, 20)).shape == (3, 20)
    assert np.allclose(imresize(np.full((9, 7), 77.0), scale=1 / 3), 77.0)
    assert np.allclose(imresize(np.full((5, 6), 12.0), scale=3), 12.0)


def test_imresize_keeps_uint8_and_rounds():
    image = (np.arange(64, dtype=np.uint8).reshape(8, 8) * 4)
    out = imresize(image, scale=0.5)
    assert out.dtype == np.uint8 and out.shape == (4, 4)


def test_psnr_and_ssim_basics():
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    assert psnr(hr, hr, 2) == float("inf")
    assert ssim(hr, hr, 2) == pytest.approx(1.0)
    noisy = np.clip(hr.astype(int) + rng.integers(-40, 41, hr.shape), 0, 255).astype(np.uint8)
    assert 25 < psnr(noisy, hr, 2) < 40
    assert ssim(noisy, hr, 2) < 0.99
    # The border cut matters: damage confined to the border does not count.
    damaged = hr.copy()
    damaged[:2] = 0
    assert psnr(damaged, hr, 2) == float("inf")
