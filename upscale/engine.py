"""The inference engine: one model, one device, tiles that stitch without seams.

`Upscaler` asks the model only what a descriptor offers (scale, receptive field, channels, half
support), so any TriNet runs the same way. It takes every image kind the application reads (gray,
gray+alpha, RGB, RGBA; 8-bit, 16-bit or float) and returns the same kind, scaled.
"""

from __future__ import annotations

import math
import os
from typing import Callable

import cv2
import numpy as np
import torch
from PIL import Image

from .alpha import bleed_colors
from .errors import UpscaleError
from .models import LoadedModel, load
from trinas.allocator import keep_freed_memory
from trinas.net import TriNet
from trinas.precision import DTYPES
from trinas.symmetry import self_ensemble
from trinas.tiling import CPU_TILE, plan_tiles, whole_if_one_tile

TileCallback = Callable[[int, int], None]  # (tiles done, tiles total)


class EngineError(UpscaleError, RuntimeError):
    """Raised for a request the engine cannot honour; the message names the fix."""


def pick_device(name: str = "auto") -> torch.device:
    """`auto` prefers CUDA, then Apple MPS, then the CPU; anything else is taken as a torch device name."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise EngineError(f"unknown device {name!r} (use auto, cpu, cuda, cuda:N or mps)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EngineError("--device cuda asked for, but this torch build sees no CUDA GPU")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise EngineError("--device mps asked for, but Apple MPS is not available here")
    return device


def pick_dtype(device: torch.device, precision: str, supports_half: bool) -> torch.dtype:
    """The precision the convolutions run in. Auto: fp16 on a GPU when the model allows it, fp32 on the CPU.
    On the CPU bf16 is there to ask for (the engine runs it as autocast, `Upscaler`): on processors with
    AMX it made 1280x720 frames 2.2-2.6x as fast at 0.002 dB of PSNR (benchmarks/results/precision-bf16-cpu-*);
    on others it can be slower than fp32, so `upscale bench --precisions fp32,bf16` decides. fp16 on the CPU
    is refused (slow, or it crashes)."""
    if precision == "auto":
        return torch.float16 if device.type in ("cuda", "mps") and supports_half else torch.float32
    if precision not in DTYPES:
        raise EngineError(f"unknown precision {precision!r} (use auto, fp32, fp16 or bf16)")
    dtype = DTYPES[precision]
    if dtype == torch.float16 and device.type == "cpu":
        raise EngineError("fp16 runs only on a GPU; on the CPU use fp32 or bf16 (drop --precision, or "
                          "--precision bf16)")
    if dtype != torch.float32 and not supports_half:
        raise EngineError(f"this model does not support {precision}; use fp32")
    return dtype


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and ("out of memory" in str(exc) or "can't allocate memory" in str(exc)))


def _free_memory(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 << 30


class Upscaler:
    """Upscale images with one model on one device.

    tile: input tile side in pixels, 0 for whole images, or "auto" (from free memory). tile_pad: context
    read around each tile, default the model's receptive field, which makes tiled output equal untiled.
    tta: self-ensemble, the mean of the model's outputs over the 8 flips and rotations of the input (8x the
    time, a little more PSNR). compiled: run the model through torch.compile (`set_compiled`).
    """

    def __init__(self, model: LoadedModel | TriNet, device: str = "auto", precision: str = "auto",
                 tile: int | str = "auto", tile_pad: int | None = None, threads: int | None = None,
                 channels_last: bool | None = None, tta: bool = False, compiled: bool = False) -> None:
        loaded = LoadedModel.of(model)
        self.device = pick_device(device)
        keep_freed_memory()  # large activations reuse freed memory instead of faulting in new pages
        self.tta = tta
        self.dtype = pick_dtype(self.device, precision, loaded.supports_half)
        # bf16 on the CPU is autocast: weights, the bicubic skip and the sums into the output stay fp32 and
        # the convolutions run in bf16. Weights cast to bf16 lost 0.01 dB on Set5 (the output itself rounded
        # to bf16's 8 bits); autocast lost 0.002 and ran as fast.
        self.autocast = self.device.type == "cpu" and self.dtype == torch.bfloat16
        self.storage_dtype = torch.float32 if self.autocast else self.dtype
        if self.device.type == "cpu":
            torch.set_num_threads(threads or len(os.sched_getaffinity(0)))
        self.model = loaded.module.eval().to(self.device, self.storage_dtype)
        self.scale = loaded.scale
        self.channels = loaded.channels
        self.receptive_field = loaded.receptive_field
        self.peak_floats_per_pixel = loaded.peak_floats_per_pixel
        if tile != "auto" and (not isinstance(tile, int) or tile < 0):
            raise EngineError(f"tile must be a non-negative number of pixels or 'auto', got {tile!r}")
        if tile_pad is not None and tile_pad < 0:
            raise EngineError(f"tile pad must be non-negative, got {tile_pad}")
        self.tile = tile
        self.tile_pad = self.receptive_field if tile_pad is None else tile_pad
        self.config = loaded.config
        # channels-last measured 1.5-1.7x faster on the CPU with `upscale bench` (CHANGELOG), and it is the
        # layout CUDA tensor cores prefer; False keeps the default NCHW layout.
        self.set_channels_last(True if channels_last is None else channels_last)
        self._compiled = None
        self.set_compiled(compiled)

    def set_compiled(self, enabled: bool) -> None:
        """Run the model through `torch.compile` (fused kernels; the first tiles compile, tens of seconds on a
        CPU), or eagerly. Measure before using it: in the tiled engine on our 2-core CPU it ran 0.83x
        (trinas-x2-searched) and 0.66x (trinas-x4-baseline) the eager speed (`upscale bench --compile`); off by
        default."""
        if enabled and self._compiled is None:
            self._compiled = torch.compile(self.model)  # kept: switching back and forth compiles once
        self.forward = self._compiled if enabled else self.model

    def computing(self) -> torch.autocast:
        """The context the model runs in: bf16 autocast on the CPU where asked for, a no-op otherwise."""
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast)

    def set_channels_last(self, enabled: bool) -> None:
        """Keep weights and tile windows in channels-last (NHWC) memory layout, or in the default NCHW."""
        self.memory_format = torch.channels_last if enabled else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)

    @classmethod
    def from_pretrained(cls, spec: str, **kwargs) -> "Upscaler":
        """`spec`: a packaged name (`trinas-x2`), a model folder, or `hf:owner/repo[@revision]`."""
        return cls(load(spec), **kwargs)

    # ----------------------------------------------------------------- tensors
    def auto_tile(self) -> int:
        """The largest square tile whose activations fit comfortably in the memory free now."""
        floats = float(self.peak_floats_per_pixel)
        itemsize = torch.finfo(self.dtype).bits // 8
        budget = _free_memory(self.device) * (0.5 if self.device.type != "cpu" else 0.125)
        side = int(math.sqrt(budget / (floats * itemsize * 2)))
        # On the CPU, tiles that stay in cache beat whole images: 256 measured fastest (`upscale bench --tiles`).
        return max(32, min(side, CPU_TILE if self.device.type == "cpu" else 2048))

    @torch.inference_mode()
    def run_tensor(self, x: torch.Tensor, on_tile: TileCallback | None = None) -> torch.Tensor:
        """NCHW float32 in [0, 1] on the CPU -> NCHW float32 scaled by `scale`, tiled as configured (and
        averaged over the 8 flips and rotations with `tta`)."""
        n, c, h, w = x.shape
        s = self.scale
        out = torch.empty((n, c, h * s, w * s), dtype=torch.float32)

        def store(rows: slice, cols: slice, y: torch.Tensor) -> None:
            out[:, :, rows, cols] = y.clamp_(0, 1).cpu()

        self._run_tiles(x, store, on_tile)
        return out

    def _model_on(self, window: torch.Tensor) -> torch.Tensor:
        """The model's output for one tile window: plain, or the mean over the 8 symmetries with `tta`. Each
        window carries its own context, so the ensemble of the tiles is the ensemble of the whole image."""
        window = window.to(self.device, self.storage_dtype).contiguous(memory_format=self.memory_format)
        with self.computing():
            if self.tta:
                return self_ensemble(self.forward, window, self.memory_format)
            return self.forward(window).float()

    @torch.inference_mode()
    def _run_tiles(self, x: torch.Tensor, store: Callable[[slice, slice, torch.Tensor], None],
                   on_tile: TileCallback | None = None) -> None:
        """Run the model over the tiles of `x` and hand each tile's output core to `store(rows, cols, y)` (output
        coordinates, y: N x C x rows x cols float32), so callers keep the result in their own pixel type."""
        n, c, h, w = x.shape
        tile = whole_if_one_tile(h, w, self.auto_tile()) if self.tile == "auto" else int(self.tile)
        s = self.scale
        while True:
            try:
                tiles = plan_tiles(h, w, tile, self.tile_pad)
                for index, t in enumerate(tiles):
                    y = self._model_on(x[:, :, t.read_top:t.read_bottom, t.read_left:t.read_right])
                    oy, ox = (t.top - t.read_top) * s, (t.left - t.read_left) * s
                    core = y[:, :, oy:oy + (t.bottom - t.top) * s, ox:ox + (t.right - t.left) * s]
                    store(slice(t.top * s, t.bottom * s), slice(t.left * s, t.right * s), core)
                    if on_tile:
                        on_tile(index + 1, len(tiles))
                return
            except Exception as exc:  # noqa: BLE001 - only out-of-memory is retried
                if not _is_oom(exc):
                    raise
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                current = tile if tile > 0 else max(h, w)
                if current <= 16:
                    advice = "free GPU memory or use --device cpu" if self.device.type != "cpu" else \
                        "free memory, or upscale a smaller image"
                    raise EngineError(f"out of memory even with 16-pixel tiles; {advice}") from exc
                tile = current // 2
                self.tile = tile  # the next image starts from the size that fitted

    # ------------------------------------------------------------------ arrays
    def _run_planes(self, planes: np.ndarray, out: np.ndarray, peak: float,
                    on_tile: TileCallback | None) -> None:
        """HxWxC float32 planes (C = 1 or 3) -> `out` (HsxWsxC, any pixel type), written tile by tile in its
        final type: the whole output is never held as float (about 45 bytes per output pixel before)."""
        c = planes.shape[2]
        if c != self.channels:
            planes = np.repeat(planes, 3, axis=2) if c == 1 else planes.mean(axis=2, keepdims=True)
        x = torch.from_numpy(np.ascontiguousarray(planes)).permute(2, 0, 1)[None]
        integer = np.issubdtype(out.dtype, np.integer)

        def store(rows: slice, cols: slice, y: torch.Tensor) -> None:
            y = y[0].permute(1, 2, 0).cpu()
            if c != self.channels:
                y = y.mean(dim=2, keepdim=True) if c == 1 else y.repeat(1, 1, 3)
            y = y.clamp_(0, 1)
            if integer:
                y = y.mul_(peak).round_()
            out[rows, cols] = y.numpy().astype(out.dtype, copy=False)

        self._run_tiles(x, store, on_tile)

    def upscale_array(self, pixels: np.ndarray, outscale: float | None = None,
                      on_tile: TileCallback | None = None) -> np.ndarray:
        """HxW or HxWxC (C = 1..4) of uint8, uint16 or float in [0, 1] -> the same kind, scaled.

        The pixel type decides the range (uint16 stays 16-bit, never judged by its values). Alpha is
        upscaled on its own, after colour under transparent pixels was bled from visible neighbours.
        """
        if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] not in (1, 2, 3, 4)):
            raise EngineError(f"expected an HxW or HxWxC image with C in 1..4, got shape {pixels.shape}")
        if pixels.shape[0] == 0 or pixels.shape[1] == 0:
            raise EngineError("the image has zero width or height")
        dtype = pixels.dtype
        if dtype == np.uint8 or dtype == np.uint16:
            peak = float(np.iinfo(dtype).max)
        elif np.issubdtype(dtype, np.floating):
            peak = 1.0
            if not np.isfinite(pixels).all():
                raise EngineError("the image holds NaN or infinite values; float pixels must be finite, in [0, 1]")
            if pixels.size and (float(pixels.max()) > 1.0 + 1e-6 or float(pixels.min()) < -1e-6):
                raise EngineError(f"float pixels must be in [0, 1], these span {float(pixels.min()):g}.."
                                  f"{float(pixels.max()):g} (divide 0..255 images by 255, or pass uint8)")
        else:
            raise EngineError(f"unsupported pixel type {dtype}; use uint8, uint16 or float")
        squeeze = pixels.ndim == 2
        pixels = pixels[..., None] if squeeze else pixels
        h, w, channels = pixels.shape
        s = self.scale
        _check_memory(h, w, channels, s, np.dtype(dtype).itemsize)
        result = np.empty((h * s, w * s, channels), dtype=dtype)  # the output, in its final pixel type
        has_alpha = channels in (2, 4)
        colour = (pixels[..., :-1] if has_alpha else pixels).astype(np.float32)
        colour /= peak  # in place: one float copy of the input, no second one
        if has_alpha:
            alpha = pixels[..., -1].astype(np.float32)
            alpha /= peak
            if colour.shape[2] == 3:
                colour = bleed_colors(colour, alpha)
            else:
                colour = bleed_colors(np.repeat(colour, 3, axis=2), alpha)[..., :1]
            self._run_planes(alpha[..., None], result[..., -1:], peak, on_tile)
            del alpha
            self._run_planes(colour, result[..., :-1], peak, on_tile)
        else:
            self._run_planes(colour, result, peak, on_tile)
        del colour
        if outscale is not None and not math.isclose(outscale, self.scale):
            result = resize_to(result, round(h * outscale), round(w * outscale))
        return result[..., 0] if squeeze else result

    def __call__(self, image: Image.Image | np.ndarray, outscale: float | None = None) -> Image.Image | np.ndarray:
        """Upscale a PIL image (returned as PIL, upright: its EXIF orientation applied, as the CLI does) or a
        numpy array (returned as numpy)."""
        if isinstance(image, np.ndarray):
            return self.upscale_array(image, outscale)
        if not isinstance(image, Image.Image):
            hint = (" (a path: open it with PIL.Image.open, or use `upscale image`)"
                    if isinstance(image, (str, os.PathLike)) else
                    " (a tensor: use Upscaler.run_tensor for NCHW float tensors)" if isinstance(image, torch.Tensor)
                    else "")
            raise TypeError(f"expected a PIL image or a numpy array, got {type(image).__name__}{hint}")
        from PIL import ImageOps

        from .images import from_pil, to_pil

        return to_pil(self.upscale_array(from_pil(ImageOps.exif_transpose(image)), outscale))


WORKING_MEMORY = 512 << 20  # tiles, activations and thread pools beside the image buffers, generously


def _check_memory(height: int, width: int, channels: int, scale: int, itemsize: int) -> None:
    """Refuse an image whose buffers cannot fit in the memory free now, saying what it needs: the output in
    its own pixel type, one float copy of the input, and the working memory."""
    need = height * width * scale * scale * channels * itemsize + height * width * channels * 4 + WORKING_MEMORY
    free = _free_memory(torch.device("cpu"))
    if need > free:
        raise EngineError(f"a {width}x{height} image needs about {need / 2**30:.1f} GB of memory at x{scale}, "
                          f"and {free / 2**30:.1f} GB is free; free memory or upscale a smaller image")


def resize_to(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """High-quality resize of HxWxC (any pixel type, kept): area averaging to shrink, Lanczos to enlarge."""
    if height < 1 or width < 1:
        raise EngineError(f"--outscale gives an empty image ({height}x{width})")
    shrinking = height * width < pixels.shape[0] * pixels.shape[1]
    method = cv2.INTER_AREA if shrinking else cv2.INTER_LANCZOS4
    out = cv2.resize(pixels, (width, height), interpolation=method)
    return out[..., None] if out.ndim == 2 else out
