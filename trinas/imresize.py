"""MATLAB-compatible `imresize(..., 'bicubic')`: the resize every published SR table uses to make LR images.

MATLAB's version differs from OpenCV/PIL bicubic: when shrinking it widens the cubic kernel by the scale
(antialiasing), and it reflects the image at its borders. Matching it is what makes our PSNR comparable
with the literature.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def _cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic kernel with a = -0.5, as MATLAB uses."""
    ax = x.abs()
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))
    return near + far


def _contributions(in_len: int, out_len: int, scale: float, antialias: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """For each output index: the input indices it reads (reflected at borders) and their weights."""
    width = 4.0
    if scale < 1 and antialias:
        kernel = lambda t: scale * _cubic(scale * t)  # noqa: E731 - a widened kernel
        width /= scale
    else:
        kernel = _cubic
    x = torch.arange(1, out_len + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(u - width / 2)
    taps = math.ceil(width) + 2
    indices = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]
    weights = kernel(u[:, None] - indices)
    weights = weights / weights.sum(dim=1, keepdim=True)
    # Reflect out-of-range indices back inside (MATLAB's "symmetric" boundary).
    mirror = torch.cat([torch.arange(in_len), torch.arange(in_len - 1, -1, -1)])
    indices = mirror[(indices.long() - 1) % (2 * in_len)]
    keep = weights.abs().sum(dim=0) > 0
    return indices[:, keep], weights[:, keep]


def _resize_dim(x: torch.Tensor, dim: int, out_len: int, scale: float, antialias: bool) -> torch.Tensor:
    indices, weights = _contributions(x.shape[dim], out_len, scale, antialias)
    x = x.movedim(dim, 0)
    weights = weights.to(x.dtype)
    shape = (-1,) + (1,) * (x.dim() - 1)
    out = x[indices[:, 0]] * weights[:, 0].reshape(shape)
    for tap in range(1, indices.shape[1]):  # one tap at a time keeps memory at one output image
        out += x[indices[:, tap]] * weights[:, tap].reshape(shape)
    return out.movedim(0, dim)


def imresize(image: np.ndarray | torch.Tensor, scale: float | None = None,
             size: tuple[int, int] | None = None, antialias: bool = True) -> np.ndarray | torch.Tensor:
    """Resize an image like MATLAB's imresize(image, scale, 'bicubic').

    Accepts an HxW or HxWxC numpy array (uint8 results are rounded and clipped like MATLAB's), or a
    tensor whose last two dimensions are H, W. Give either `scale` or the output `size` (height, width).
    """
    if (scale is None) == (size is None):
        raise ValueError("give exactly one of scale or size")
    is_numpy = isinstance(image, np.ndarray)
    if is_numpy:
        dtype = image.dtype
        t = torch.from_numpy(np.array(image, dtype=np.float64))
        h_dim, w_dim = 0, 1
    else:
        t = image.to(torch.float64)
        h_dim, w_dim = t.dim() - 2, t.dim() - 1
    in_h, in_w = t.shape[h_dim], t.shape[w_dim]
    if size is None:
        out_h, out_w = math.ceil(in_h * scale), math.ceil(in_w * scale)
        scale_h = scale_w = float(scale)
    else:
        out_h, out_w = size
        scale_h, scale_w = out_h / in_h, out_w / in_w
    # MATLAB resizes along the dimension with the smaller scale first.
    order = [(h_dim, out_h, scale_h), (w_dim, out_w, scale_w)]
    if scale_w < scale_h:
        order.reverse()
    for dim, length, s in order:
        t = _resize_dim(t, dim, length, s, antialias)
    if not is_numpy:
        return t.to(image.dtype)
    if dtype == np.uint8:
        return t.round().clamp(0, 255).numpy().astype(np.uint8)
    if dtype == np.uint16:
        return t.round().clamp(0, 65535).numpy().astype(np.uint16)
    return t.numpy().astype(dtype)
