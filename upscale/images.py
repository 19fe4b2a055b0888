"""Read and write every image kind the app supports as numpy arrays, keeping what a user expects kept.

Pixels come out upright (EXIF orientation applied), 8-bit as uint8 and 16-bit as uint16: bit depth is
decided by the file's header and mode, never by pixel values. ICC profile, EXIF (orientation reset to 1)
and dpi travel from `read_image` to `write_image`. Every expected failure is an `ImageError` whose one-line
message names the file.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import UpscaleError

DEFAULT_MAX_PIXELS = 200_000_000
SUPPORTED_FORMATS = {"PNG", "JPEG", "WEBP", "TIFF", "BMP"}
EXTENSIONS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF",
              ".bmp": "BMP"}

_NO_16_BIT = {"JPEG", "WEBP", "BMP"}
_NO_ALPHA = {"JPEG", "BMP"}  # Pillow reads back its own RGBA BMP as RGB, so BMP is treated as alpha-less
_STORED_AS_IS = {"L", "LA", "RGB", "RGBA"}
_GRAY_16 = {"I;16", "I;16L", "I;16B", "I;16N", "I"}
_CONVERSIONS = {"1": "L", "CMYK": "RGB", "YCbCr": "RGB", "RGBX": "RGB", "PA": "RGBA", "La": "LA", "RGBa": "RGBA"}
_WITH_ALPHA = {"P": "RGBA", "L": "LA", "RGB": "RGBA"}  # for images whose transparency is a key colour
_EXIF_PREFIX = b"Exif\x00\x00"
_ORIENTATION_TAG = 0x0112
_ORIENT = {  # EXIF orientation -> the turn that makes the stored pixels upright
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}
_PILLOW_LIMIT_LOCK = threading.Lock()


class ImageError(UpscaleError):
    """An image that cannot be read or written; the message is one line and names the file."""


@dataclass
class LoadedImage:
    """Upright pixels (HxW, or HxWxC with C = 2 gray+alpha, 3 RGB, 4 RGBA; uint8 or uint16) and their metadata."""

    pixels: np.ndarray
    format: str
    icc_profile: bytes | None = None
    exif: bytes | None = None  # starts with b"Exif\0\0"; orientation already 1
    dpi: tuple | None = None
    note: str | None = None  # something the user should know about how it was read (a profile dropped)


def is_image_path(path: str | os.PathLike) -> bool:
    """Whether the suffix is one this module reads and writes (the content is not looked at)."""
    return Path(path).suffix.lower() in EXTENSIONS


def format_for(path: str | os.PathLike) -> str:
    """The format a path's suffix asks for, e.g. "JPEG" for photo.JPG."""
    path = Path(path)
    if path.suffix.lower() not in EXTENSIONS:
        kind = f"'{path.suffix}' files" if path.suffix else "files without a suffix"
        raise ImageError(f"{path}: cannot write {kind} (use {', '.join(sorted(set(EXTENSIONS)))})")
    return EXTENSIONS[path.suffix.lower()]


def read_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Decode a file to upright pixels plus the metadata `write_image` carries over.

    The size is checked against `max_pixels` from the header, before any pixel is decoded.
    """
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, not an image file")
    if not path.is_file():
        raise ImageError(f"{path}: is not a regular file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: is empty (0 bytes)")
    try:
        with _own_pixel_limit(), Image.open(path) as image:
            return _decode(path, image, max_pixels)
    except ImageError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageError(f"{path}: unknown format or damaged header (PNG, JPEG, WEBP, TIFF, BMP are read)") from exc
    except Exception as exc:  # noqa: BLE001 - decoders raise many kinds; the user needs one line
        raise ImageError(f"{path}: cannot read image: {_first_line(exc)}") from exc


def write_image(path: str | os.PathLike, pixels: np.ndarray, *, format: str | None = None, quality: int = 95,
                icc_profile: bytes | None = None, exif: bytes | None = None, dpi: tuple | None = None) -> None:
    """Write pixels atomically: a reader never sees a partial file, and a failure leaves the old one untouched.

    `format` defaults to the suffix's. `quality` applies to JPEG and WEBP. 16-bit pixels are kept in PNG and
    TIFF and rounded to 8 bits elsewhere; JPEG and BMP have no alpha, so transparency is composited over white.
    """
    path = Path(path)
    fmt = EXTENSIONS.get(f".{format.lower()}", format.upper()) if format else format_for(path)
    if fmt not in SUPPORTED_FORMATS:
        raise ImageError(f"{path}: cannot write format {format!r} (use {', '.join(sorted(SUPPORTED_FORMATS))})")
    problem = _pixel_problem(pixels)
    if problem:
        raise ImageError(f"{path}: {problem}")
    try:
        _atomic_write(path, lambda f: _encode(f, pixels, fmt, quality, icc_profile, exif, dpi))
    except Exception as exc:  # noqa: BLE001 - encoders and the file system raise many kinds
        raise ImageError(f"{path}: cannot write {fmt}: {_first_line(exc)}") from exc


def from_pil(image: Image.Image) -> np.ndarray:
    """Pixels of a PIL image by the app's mode rules; no EXIF orientation is applied. ValueError for other modes.

    16-bit gray stays uint16 HxW; palette becomes RGB (RGBA if it has transparency); "1" becomes L, CMYK RGB.
    """
    if image.mode in _GRAY_16:
        return np.clip(np.array(image), 0, 65535).astype(np.uint16)
    if image.mode in _WITH_ALPHA and "transparency" in image.info:
        image = image.convert(_WITH_ALPHA[image.mode])
    elif image.mode == "P":
        image = image.convert("RGB")
    elif image.mode in _CONVERSIONS:
        image = image.convert(_CONVERSIONS[image.mode])
    elif image.mode not in _STORED_AS_IS:
        raise ValueError(f"unsupported pixel mode {image.mode}")
    return np.array(image)


def to_pil(pixels: np.ndarray) -> Image.Image:
    """The inverse of `from_pil`: uint8 -> L, LA, RGB, RGBA; uint16 gray -> "I;16".

    PIL has no 16-bit colour modes, so 16-bit colour is rounded to 8 bits here; `write_image` keeps its 16
    bits by not going through PIL. ValueError for arrays of another dtype or shape.
    """
    problem = _pixel_problem(pixels)
    if problem:
        raise ValueError(problem)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    if pixels.dtype == np.uint16 and pixels.ndim == 3:
        pixels = _to_8_bit(pixels)
    return Image.fromarray(np.ascontiguousarray(pixels))


@contextlib.contextmanager
def _own_pixel_limit() -> Iterator[None]:
    """Pillow's bomb limit is process-wide and ours is per call, so lift Pillow's for one read, then restore it.

    Reads hold a lock meanwhile, so two threads never interleave the swap.
    """
    with _PILLOW_LIMIT_LOCK:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _decode(path: Path, image: Image.Image, max_pixels: int) -> LoadedImage:
    fmt = "JPEG" if image.format == "MPO" else image.format  # camera JPEGs with a second picture open as MPO
    if fmt not in SUPPORTED_FORMATS:
        raise ImageError(f"{path}: {image.format} images are not supported (use PNG, JPEG, WEBP, TIFF or BMP)")
    width, height = image.size  # Pillow refuses zero-size images at open: "damaged header" above
    frames = getattr(image, "n_frames", 1) if image.format != "MPO" else 1  # an MPO's 2nd picture is a preview
    if frames > 1:  # never the first frame alone, silently
        kind = "a multi-page TIFF" if fmt == "TIFF" else f"an animated {fmt}"
        raise ImageError(f"{path}: {kind} with {frames} frames; this command upscales single images: use "
                         f"`upscale video` for animations, or split the pages/frames first")
    if width * height > max_pixels:
        raise ImageError(f"{path}: {width}x{height} is {width * height:,} pixels, over the limit of "
                         f"{max_pixels:,}; raise the limit if you trust this file")
    icc, note = image.info.get("icc_profile") or None, None
    if _bits_per_sample(path, image) > 8:
        pixels = _decode_16_bit(path, image)
    else:
        image.load()  # raises on truncated data: Pillow's LOAD_TRUNCATED_IMAGES stays False
        if image.mode == "CMYK" and icc:
            image, icc, note = _cmyk_to_srgb(path, image, icc)
        pixels = from_pil(image)
    if fmt == "TIFF":  # a TIFF's tags are its own structure, not EXIF to carry into another file
        orientation, exif = image.getexif().get(_ORIENTATION_TAG, 1), None
    else:
        orientation, exif = _upright_exif(image.info["exif"]) if image.info.get("exif") else (1, None)
    pixels = np.ascontiguousarray(_ORIENT.get(orientation, lambda a: a)(pixels))
    dpi = tuple(float(v) for v in image.info["dpi"]) if image.info.get("dpi") else None
    return LoadedImage(pixels, fmt, icc, exif, dpi, note)


def _cmyk_to_srgb(path: Path, image: Image.Image, icc: bytes) -> tuple[Image.Image, bytes | None, str | None]:
    """A CMYK image with its own profile, converted to sRGB through that profile (the output is RGB, so a
    CMYK profile must not travel with it). If the profile cannot be used, it is dropped, and the user told."""
    from PIL import ImageCms

    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        srgb = ImageCms.createProfile("sRGB")
        converted = ImageCms.profileToProfile(image, source, srgb, outputMode="RGB")
        return converted, ImageCms.ImageCmsProfile(srgb).tobytes(), None
    except Exception:  # noqa: BLE001 - a profile littlecms cannot use: the plain conversion, said out loud
        return image, None, (f"{path}: its CMYK colour profile could not be applied; converted to RGB without it, "
                             "so colours may shift")


def _bits_per_sample(path: Path, image: Image.Image) -> int:
    """Pillow decodes 16-bit colour PNG and TIFF to 8 bits under an 8-bit mode name, so ask the header."""
    if image.format == "TIFF":
        bits = image.tag_v2.get(258, 8)
        return max(bits) if isinstance(bits, tuple) else bits
    return _png_header(path)[24] if image.format == "PNG" else 8


def _png_header(path: Path) -> bytes:
    """Signature and IHDR: byte 24 is the bit depth, byte 25 the colour type (4 = gray+alpha)."""
    with open(path, "rb") as f:
        return f.read(26)


def _decode_16_bit(path: Path, image: Image.Image) -> np.ndarray:
    """cv2 keeps all 16 bits (and ignores EXIF orientation, which `_decode` applies)."""
    pixels = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise ImageError(f"{path}: cannot read image: corrupt or truncated 16-bit data")
    if pixels.dtype != np.uint16:
        raise ImageError(f"{path}: {pixels.dtype} samples are not supported (only 8- and 16-bit integers)")
    if pixels.ndim == 3 and pixels.shape[2] >= 3:
        pixels = pixels[..., [2, 1, 0, 3][:pixels.shape[2]]]  # BGR(A) -> RGB(A)
    if pixels.ndim == 3 and pixels.shape[2] == 4 and image.format == "PNG" and _png_header(path)[25] == 4:
        pixels = pixels[..., [0, 3]]  # cv2 expands 16-bit gray+alpha to colour
    return pixels


def _upright_exif(raw: bytes) -> tuple[int, bytes | None]:
    """The EXIF orientation, and the EXIF with orientation 1 since `read_image` turns the pixels.

    Patched in place rather than re-serialised, so maker notes keep their offsets. EXIF too broken to parse
    is dropped: metadata must never make a readable image unreadable.
    """
    data = bytearray(raw if raw.startswith(_EXIF_PREFIX) else _EXIF_PREFIX + raw)
    try:
        order = {b"II": "<", b"MM": ">"}[bytes(data[6:8])]
        ifd = 6 + struct.unpack_from(order + "I", data, 10)[0]
        (count,) = struct.unpack_from(order + "H", data, ifd)
        for entry in range(ifd + 2, ifd + 2 + 12 * count, 12):
            tag, kind = struct.unpack_from(order + "HH", data, entry)
            if tag == _ORIENTATION_TAG and kind == 3:  # type 3: SHORT, stored in the entry itself
                (orientation,) = struct.unpack_from(order + "H", data, entry + 8)
                struct.pack_into(order + "H", data, entry + 8, 1)
                return orientation, bytes(data)
    except (KeyError, struct.error):
        return 1, None
    return 1, bytes(data)


def _pixel_problem(pixels: np.ndarray) -> str | None:
    if not isinstance(pixels, np.ndarray):
        return f"pixels must be a numpy array, not {type(pixels).__name__}"
    if pixels.dtype not in (np.uint8, np.uint16):
        return f"pixels must be uint8 or uint16, not {pixels.dtype}"
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and 1 <= pixels.shape[2] <= 4)) or pixels.size == 0:
        return f"pixels must be a non-empty HxW or HxWxC array with C from 1 to 4, not shape {pixels.shape}"
    return None


def _to_8_bit(pixels: np.ndarray) -> np.ndarray:
    """Round v/257 in integers: 65535 -> 255, and no float copy of a large image."""
    return ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _flatten_on_white(pixels: np.ndarray) -> np.ndarray:
    alpha = pixels[..., -1:].astype(np.float32) / 255
    return np.round(pixels[..., :-1] * alpha + 255 * (1 - alpha)).astype(np.uint8)


STALE_TEMPORARY_S = 3600.0  # a temporary file of ours this old was left by a run that was killed


def _remove_stale_temporaries(path: Path) -> None:
    """Delete the temporary files a killed run left for `path` (ours by name: `.STEM.<8 hex>.tmp.EXT`), once
    they are old enough that no running write can own them."""
    pattern = re.compile(rf"^\.{re.escape(path.stem)}\.[0-9a-f]{{8}}\.tmp{re.escape(path.suffix)}$")
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    now = time.time()
    for entry in entries:
        try:
            if pattern.match(entry.name) and entry.is_file(follow_symlinks=False) and \
                    now - entry.stat(follow_symlinks=False).st_mtime > STALE_TEMPORARY_S:
                os.unlink(entry.path)
        except OSError:
            pass


def _atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write into a hidden temporary file beside `path`, fsync, then rename over it; remove it on any failure
    (and the stale ones a killed run left for the same file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    temporary = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        with open(temporary, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _encode(f: BinaryIO, pixels: np.ndarray, fmt: str, quality: int, icc_profile: bytes | None,
            exif: bytes | None, dpi: tuple | None) -> None:
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    if pixels.dtype == np.uint16 and pixels.ndim == 3 and fmt not in _NO_16_BIT:
        f.write(_encode_16_bit_colour(pixels, fmt, icc_profile, exif, dpi))
        return
    if pixels.dtype == np.uint16 and fmt in _NO_16_BIT:
        pixels = _to_8_bit(pixels)
    if fmt in _NO_ALPHA and pixels.ndim == 3 and pixels.shape[2] in (2, 4):
        pixels = _flatten_on_white(pixels)
    options = {"icc_profile": icc_profile, "exif": exif, "dpi": dpi,
               "quality": quality if fmt in ("JPEG", "WEBP") else None,
               "compression": "tiff_lzw" if fmt == "TIFF" else None}
    to_pil(pixels).save(f, format=fmt, **{k: v for k, v in options.items() if v is not None})


def _encode_16_bit_colour(pixels: np.ndarray, fmt: str, icc_profile: bytes | None, exif: bytes | None,
                          dpi: tuple | None) -> bytes:
    """PIL cannot write 16-bit colour, so cv2 does; PNG gets its metadata chunks added here.

    cv2 writes no ICC profile or EXIF into TIFF: a 16-bit colour TIFF keeps only its dpi. 16-bit gray+alpha,
    which cv2 cannot write, is stored as RGBA.
    """
    if pixels.shape[2] == 2:
        pixels = pixels[..., [0, 0, 0, 1]]
    bgr = pixels[..., [2, 1, 0, 3][:pixels.shape[2]]]
    params = []
    if fmt == "TIFF" and dpi:
        params = [cv2.IMWRITE_TIFF_RESUNIT, 2, cv2.IMWRITE_TIFF_XDPI, round(dpi[0]),
                  cv2.IMWRITE_TIFF_YDPI, round(dpi[1])]
    ok, encoded = cv2.imencode(f".{fmt.lower()}", np.ascontiguousarray(bgr), params)
    if not ok:
        raise RuntimeError(f"cv2 could not encode 16-bit {fmt}")
    data = encoded.tobytes()
    return _with_png_metadata(data, icc_profile, exif, dpi) if fmt == "PNG" else data


def _with_png_metadata(png: bytes, icc_profile: bytes | None, exif: bytes | None, dpi: tuple | None) -> bytes:
    """Insert iCCP, eXIf and pHYs chunks right after IHDR (signature 8 + IHDR 25 bytes), before any IDAT."""
    chunks = []
    if icc_profile:
        chunks.append((b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc_profile)))
    if exif:
        chunks.append((b"eXIf", exif.removeprefix(_EXIF_PREFIX)))
    if dpi:
        chunks.append((b"pHYs", struct.pack(">IIB", round(dpi[0] / 0.0254), round(dpi[1] / 0.0254), 1)))
    packed = b"".join(struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
                      for kind, body in chunks)
    return png[:33] + packed + png[33:]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
