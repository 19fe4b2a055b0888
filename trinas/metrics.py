"""PSNR and SSIM by the protocol of the published SR tables.

HR cropped to a multiple of the scale, LR by MATLAB bicubic, both compared on the BT.601 luma (Y) channel,
with `scale` pixels cut from every border. Inputs are uint8 RGB (HxWx3) or grayscale (HxW) arrays.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from .imresize import imresize


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """BT.601 luma in [16, 235] on a 0..255 float scale, as MATLAB's rgb2ycbcr; gray images pass through."""
    img = image.astype(np.float64)
    if img.ndim == 2:
        return img
    img = img / 255.0
    return 16.0 + 65.481 * img[..., 0] + 128.553 * img[..., 1] + 24.966 * img[..., 2]


def crop_to_multiple(image: np.ndarray, scale: int) -> np.ndarray:
    h, w = image.shape[:2]
    return image[: h - h % scale, : w - w % scale]


def make_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    """The LR input of the protocol: MATLAB bicubic downscale of the (already cropped) HR image."""
    return imresize(hr, scale=1 / scale)


def _shave(y: np.ndarray, border: int) -> np.ndarray:
    return y[border:-border, border:-border] if border > 0 else y


def psnr(sr: np.ndarray, hr: np.ndarray, border: int) -> float:
    """PSNR in dB on Y, `border` pixels cut from each side."""
    a, b = _shave(rgb_to_y(sr), border), _shave(rgb_to_y(hr), border)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def ssim(sr: np.ndarray, hr: np.ndarray, border: int) -> float:
    """SSIM on Y with an 11x11 Gaussian window (sigma 1.5), as in Wang et al. and the SR literature."""
    a, b = _shave(rgb_to_y(sr), border), _shave(rgb_to_y(hr), border)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(x: np.ndarray) -> np.ndarray:
        # truncate=5/1.5 gives the 11x11 window; 'valid' part only, like MATLAB's filter2(..., 'valid').
        return gaussian_filter(x, 1.5, truncate=5 / 1.5)[5:-5, 5:-5]

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den))
