"""Render the bundled sample image (samples/lighthouse.png) from code, so the project owns every pixel.

    python samples/make_sample.py

Deterministic: the same file on every run. Small on purpose (a 200x150 input is what an upscaler is for).
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

W, H = 200, 150


def ridge(rng: np.random.Generator, base: float, rough: float) -> np.ndarray:
    """A mountain skyline: midpoint-displaced heights across the width."""
    points = np.array([base, base])
    amplitude = rough
    while len(points) < W:
        mids = (points[:-1] + points[1:]) / 2 + rng.normal(0, amplitude, len(points) - 1)
        points = np.insert(points, np.arange(1, len(points)), mids)
        amplitude *= 0.55
    return np.interp(np.linspace(0, len(points) - 1, W), np.arange(len(points)), points)


def main() -> None:
    rng = np.random.default_rng(7)
    y = np.linspace(0, 1, H)[:, None, None]
    sky = (1 - y) * np.array([40, 90, 170]) + y * np.array([250, 180, 120])
    img = np.broadcast_to(sky, (H, W, 3)).copy()
    yy, xx = np.mgrid[:H, :W]
    sun = (xx - 150) ** 2 + (yy - 55) ** 2 < 14**2
    img[sun] = (255, 230, 150)
    for base, rough, colour in ((85, 18, (70, 80, 110)), (100, 12, (40, 60, 60)), (118, 6, (25, 45, 35))):
        top = ridge(rng, base, rough)
        img[yy > top[None, :]] = colour
    sea = yy > 128
    img[sea] = np.array([30, 70, 120]) + (rng.random((sea.sum(), 1)) * 25)
    image = Image.fromarray(img.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.rectangle((36, 78, 46, 128), fill=(240, 240, 235))  # lighthouse
    for band in range(84, 128, 12):
        draw.rectangle((36, band, 46, band + 5), fill=(200, 40, 40))
    draw.polygon([(33, 78), (49, 78), (41, 68)], fill=(60, 30, 30))
    draw.line((41, 72, 0, 60), fill=(255, 250, 200), width=2)
    draw.text((60, 132), "TriNAS Upscale", fill=(255, 255, 255))
    image = image.filter(ImageFilter.GaussianBlur(0.6))
    image.save(Path(__file__).with_name("lighthouse.png"), optimize=True)


if __name__ == "__main__":
    main()
