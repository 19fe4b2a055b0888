"""TriNAS Upscale: upscale images and videos with searched super-resolution networks.

    from upscale import Upscaler
    up = Upscaler.from_pretrained("trinas-x2")
    big = up(image)   # PIL image or numpy array
"""

from .engine import Upscaler

__all__ = ["Upscaler"]
__version__ = "0.1.0"
