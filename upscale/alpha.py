"""Colour under transparent pixels, so upscaling never drags dark or stray colours into an edge.

Fully transparent pixels often hold black or garbage colour. A network (or any filter wider than one
pixel) mixes that colour into the visible edge pixels next to it: the dark fringe users see. Filling
those pixels with the colour of the nearest visible ones first ("push-pull" colour bleeding) removes
the cause, whatever the network does.
"""

from __future__ import annotations

import cv2
import numpy as np


def bleed_colors(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Replace colour where alpha is 0 by an alpha-weighted average of the visible colour nearby.

    `rgb` is HxWx3 float32, `alpha` HxW float32 in [0, 1]. Visible pixels keep their colour exactly.
    """
    if alpha.min() > 0:
        return rgb
    if alpha.max() == 0:
        return rgb  # nothing visible: any colour is as good as another
    # Push: build a pyramid of premultiplied colour and coverage.
    levels = [(rgb * alpha[..., None], alpha)]
    while min(levels[-1][1].shape) > 1:
        colour, weight = levels[-1]
        h, w = weight.shape
        size = (max(1, (w + 1) // 2), max(1, (h + 1) // 2))
        levels.append((cv2.resize(colour, size, interpolation=cv2.INTER_AREA),
                       cv2.resize(weight, size, interpolation=cv2.INTER_AREA)))
    # Pull: from coarse to fine, fill each level's uncovered colour from the level above.
    colour, weight = levels[-1]
    filled = colour / np.maximum(weight, 1e-12)[..., None]
    for colour, weight in reversed(levels[:-1]):
        h, w = weight.shape
        coarse = cv2.resize(filled, (w, h), interpolation=cv2.INTER_LINEAR)
        if coarse.ndim == 2:
            coarse = coarse[..., None]
        known = colour / np.maximum(weight, 1e-12)[..., None]
        filled = np.where((weight > 0)[..., None], known, coarse)
    return np.where((alpha > 0)[..., None], rgb, filled).astype(np.float32)
