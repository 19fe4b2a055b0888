"""Image I/O promises: every mode survives a round trip, 16 bits stay 16 bits, metadata travels, writes are
atomic, and every bad file becomes one clear line naming it."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from upscale import images
from upscale.images import ImageError, from_pil, format_for, is_image_path, read_image, to_pil, write_image

RNG = np.random.default_rng(0)
SHAPES = {"L": (5, 7), "LA": (5, 7, 2), "RGB": (5, 7, 3), "RGBA": (5, 7, 4)}


def _random(kind: str, dtype=np.uint8) -> np.ndarray:
    return RNG.integers(0, np.iinfo(dtype).max, SHAPES[kind], endpoint=True).astype(dtype)


def _icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "TestCam"  # Make: must survive next to the reset orientation
    return exif.tobytes()


def _png(width: int, height: int, depth: int, colour_type: int, raw: bytes) -> bytes:
    """A hand-made PNG, for what neither PIL nor cv2 writes (16-bit gray+alpha, lying headers)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("fmt", ["png", "tiff", "bmp"])
@pytest.mark.parametrize("kind", ["L", "LA", "RGB", "RGBA"])
def test_8_bit_round_trip_is_exact(tmp_path, kind, fmt):
    if fmt == "bmp" and kind in ("LA", "RGBA"):
        pytest.skip("BMP has no alpha: see test_alpha_is_composited_over_white")
    pixels = _random(kind)
    write_image(tmp_path / f"x.{fmt}", pixels)
    loaded = read_image(tmp_path / f"x.{fmt}")
    assert loaded.pixels.dtype == np.uint8 and loaded.pixels.shape == pixels.shape
    np.testing.assert_array_equal(loaded.pixels, pixels)


@pytest.mark.parametrize("fmt", ["png", "tif"])
@pytest.mark.parametrize("kind", ["L", "RGB", "RGBA"])
@pytest.mark.parametrize("peak", [65535, 255])  # all values < 256 must still stay 16-bit
def test_16_bit_round_trip_stays_16_bit(tmp_path, kind, fmt, peak):
    pixels = RNG.integers(0, peak, SHAPES[kind], endpoint=True).astype(np.uint16)
    write_image(tmp_path / f"x.{fmt}", pixels)
    loaded = read_image(tmp_path / f"x.{fmt}")
    assert loaded.pixels.dtype == np.uint16 and loaded.pixels.shape == pixels.shape
    np.testing.assert_array_equal(loaded.pixels, pixels)


@pytest.mark.parametrize("fmt", ["png", "tif"])
@pytest.mark.parametrize("kind", ["L", "RGB", "RGBA"])
def test_16_bit_files_from_other_writers_stay_16_bit_even_with_small_values(tmp_path, kind, fmt):
    pixels = _random(kind).astype(np.uint16)  # every value < 256
    stored = pixels if pixels.ndim == 2 else pixels[..., [2, 1, 0, 3][:pixels.shape[2]]]
    (tmp_path / f"x.{fmt}").write_bytes(cv2.imencode(f".{fmt}", stored)[1].tobytes())
    loaded = read_image(tmp_path / f"x.{fmt}")
    assert loaded.pixels.dtype == np.uint16
    np.testing.assert_array_equal(loaded.pixels, pixels)


def test_16_bit_gray_alpha_png_is_read_as_two_channels(tmp_path):
    pixels = np.array([[[1000, 60000], [2, 3]]], dtype=np.uint16)
    (tmp_path / "la.png").write_bytes(_png(2, 1, 16, 4, b"\0" + pixels.astype(">u2").tobytes()))
    loaded = read_image(tmp_path / "la.png")
    assert loaded.pixels.dtype == np.uint16
    np.testing.assert_array_equal(loaded.pixels, pixels)
    write_image(tmp_path / "out.png", loaded.pixels)  # documented: stored as RGBA, nothing lost
    np.testing.assert_array_equal(read_image(tmp_path / "out.png").pixels, pixels[..., [0, 0, 0, 1]])


def _palette(transparent: bool) -> Image.Image:
    image = Image.fromarray(RNG.integers(0, 4, (5, 7), dtype=np.uint8), "P")
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9])
    if transparent:
        image.info["transparency"] = 2
    return image


@pytest.mark.parametrize("make, fmt, expected_mode", [
    (lambda: _palette(False), "PNG", "RGB"),
    (lambda: _palette(True), "PNG", "RGBA"),
    (lambda: _palette(False), "BMP", "RGB"),
    (lambda: Image.fromarray(_random("L") > 127), "PNG", "L"),
    (lambda: Image.fromarray(_random("L") > 127), "TIFF", "L"),
    (lambda: Image.fromarray(_random("RGBA"), "RGBA").convert("CMYK"), "TIFF", "RGB"),
    (lambda: Image.fromarray(_random("L")), "WEBP", "RGB"),  # WebP stores gray as colour
])
def test_pil_modes_are_read_by_the_mode_rules(tmp_path, make, fmt, expected_mode):
    image = make()
    path = tmp_path / f"x.{fmt.lower()}"
    image.save(path, format=fmt, lossless=True, **({"transparency": 2} if "transparency" in image.info else {}))
    loaded = read_image(path)
    expected = np.array(Image.open(path).convert(expected_mode))
    assert loaded.format == fmt and loaded.pixels.dtype == np.uint8
    np.testing.assert_array_equal(loaded.pixels, expected)
    write_image(tmp_path / "again.png", loaded.pixels)
    np.testing.assert_array_equal(read_image(tmp_path / "again.png").pixels, expected)


def test_pil_conversions_decide_by_mode_not_values():
    gray16 = Image.fromarray(np.array([[0, 1], [200, 255]], dtype=np.uint16))
    assert gray16.mode == "I;16" and from_pil(gray16).dtype == np.uint16
    assert to_pil(from_pil(gray16)).mode == "I;16"
    assert from_pil(Image.new("I", (2, 2), 70000)).max() == 65535  # 32-bit gray clipped, not wrapped
    assert [to_pil(_random(k)).mode for k in SHAPES] == ["L", "LA", "RGB", "RGBA"]
    colour16 = np.full((2, 2, 3), 65535, np.uint16)
    assert to_pil(colour16).mode == "RGB" and np.array(to_pil(colour16)).max() == 255  # documented: 8-bit
    with pytest.raises(ValueError, match="mode F"):
        from_pil(Image.new("F", (2, 2)))
    with pytest.raises(ValueError, match="float32"):
        to_pil(np.zeros((2, 2), np.float32))


@pytest.mark.parametrize("fmt", ["jpg", "webp", "bmp"])
def test_16_bit_is_rounded_to_8_bit_where_the_format_has_no_16_bit(tmp_path, fmt):
    pixels = np.broadcast_to(np.array([65535, 129, 128], np.uint16), (8, 8, 3))  # 129/257 rounds up, 128 down
    write_image(tmp_path / f"x.{fmt}", pixels, quality=100)
    loaded = read_image(tmp_path / f"x.{fmt}").pixels
    assert loaded.dtype == np.uint8
    assert np.abs(loaded.astype(int) - [255, 1, 0]).max() <= (0 if fmt == "bmp" else 3)


@pytest.mark.parametrize("fmt", ["jpg", "bmp"])
@pytest.mark.parametrize("kind", ["LA", "RGBA"])
def test_alpha_is_composited_over_white_where_the_format_has_no_alpha(tmp_path, kind, fmt):
    pixels = np.zeros(SHAPES[kind][:2] + (SHAPES[kind][2],), np.uint8)  # black colour everywhere
    pixels[:, 4:, -1] = 255  # right part opaque black, left part fully transparent
    write_image(tmp_path / f"x.{fmt}", pixels)
    loaded = read_image(tmp_path / f"x.{fmt}").pixels.astype(int)
    assert loaded.shape[:2] == pixels.shape[:2] and (loaded.ndim == 2) == (kind == "LA")
    assert loaded[:, :2].min() >= 250 and loaded[:, 6:].max() <= 5


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow_and_is_written_back_as_1(tmp_path, orientation):
    source = Image.fromarray(_random("RGB"))
    source.save(tmp_path / "x.png", exif=_exif(orientation))
    loaded = read_image(tmp_path / "x.png")
    np.testing.assert_array_equal(loaded.pixels, np.array(ImageOps.exif_transpose(Image.open(tmp_path / "x.png"))))
    write_image(tmp_path / "out.jpg", loaded.pixels, exif=loaded.exif)
    written = Image.open(tmp_path / "out.jpg").getexif()
    assert written[0x0112] == 1 and written[0x010F] == "TestCam"


@pytest.mark.parametrize("orientation, turned", [
    (6, lambda a: np.rot90(a, -1)), (3, lambda a: np.rot90(a, 2))])
@pytest.mark.parametrize("fmt", ["jpg", "tif", "png16"])
def test_exif_orientation_6_and_3_are_applied_on_read(tmp_path, orientation, turned, fmt):
    stored = np.zeros((8, 16, 3), np.uint8)
    stored[:4, :8] = 255  # a white top-left quarter
    path = tmp_path / f"x.{fmt[:3]}"
    if fmt == "png16":  # 16-bit PNG is decoded by cv2, which ignores orientation itself
        write_image(path, stored.astype(np.uint16) * 257, exif=_exif(orientation))
    else:
        Image.fromarray(stored).save(path, exif=_exif(orientation), quality=100)
    loaded = read_image(path)
    expected = turned(stored.astype(loaded.pixels.dtype) * (257 if fmt == "png16" else 1))
    assert loaded.pixels.shape == expected.shape
    assert np.abs(loaded.pixels.astype(int) - expected).max() <= 257 * 8
    write_image(tmp_path / "out.png", loaded.pixels, exif=loaded.exif)
    assert Image.open(tmp_path / "out.png").getexif().get(0x0112, 1) == 1  # TIFF tags are not carried at all
    np.testing.assert_array_equal(read_image(tmp_path / "out.png").pixels, loaded.pixels)  # not turned twice


@pytest.mark.parametrize("name, dtype", [("x.png", np.uint8), ("x.jpg", np.uint8), ("x.webp", np.uint8),
                                         ("x.tif", np.uint8), ("x.png", np.uint16), ("x.tif", np.uint16)])
@pytest.mark.parametrize("kind", ["L", "RGB"])
def test_icc_profile_and_dpi_travel_from_read_to_write(tmp_path, name, dtype, kind):
    if dtype == np.uint16 and name.endswith(".tif") and kind == "RGB":
        pytest.skip("documented: cv2 writes no ICC profile into 16-bit colour TIFF")
    icc = _icc()
    write_image(tmp_path / name, _random(kind, dtype), icc_profile=icc, dpi=(300, 300))
    first = read_image(tmp_path / name)
    assert first.pixels.dtype == dtype or name in ("x.jpg", "x.webp")
    assert first.icc_profile == icc and Image.open(tmp_path / name).info["icc_profile"] == icc
    out = tmp_path / f"out{name[1:]}"
    write_image(out, first.pixels, icc_profile=first.icc_profile, exif=first.exif, dpi=first.dpi)
    assert read_image(out).icc_profile == icc
    if not name.endswith(".webp"):  # WebP has no dpi
        assert read_image(out).dpi == pytest.approx((300, 300), abs=0.01)


def test_16_bit_png_metadata_chunks_are_valid(tmp_path):
    write_image(tmp_path / "x.png", _random("RGB", np.uint16), icc_profile=_icc(), exif=_exif(1), dpi=(72, 72))
    with Image.open(tmp_path / "x.png") as image:
        image.verify()  # checks every chunk's CRC
    assert list(read_image(tmp_path / "x.png").exif) == list(_exif(1))


def test_mpo_camera_jpeg_is_read_as_jpeg(tmp_path):
    first, second = Image.fromarray(_random("RGB")), Image.fromarray(_random("RGB"))
    first.save(tmp_path / "x.jpg", format="MPO", save_all=True, append_images=[second])
    assert read_image(tmp_path / "x.jpg").format == "JPEG"


def test_write_creates_folders_and_leaves_no_temporary_file(tmp_path):
    write_image(tmp_path / "a" / "b" / "x.png", _random("RGB"))
    assert [p.name for p in (tmp_path / "a" / "b").iterdir()] == ["x.png"]


def _fail_pil_save_halfway(self, fp, *args, **kwargs):
    fp.write(b"\x89PNG partial")
    raise OSError("disk full")


def _fail_fsync(fd):
    raise OSError("disk full")


@pytest.mark.parametrize("failure, pixels", [
    ((Image.Image, "save", _fail_pil_save_halfway), _random("RGB")),
    ((images.os, "fsync", _fail_fsync), _random("RGB", np.uint16)),  # the cv2 path, after all bytes are written
])
def test_failed_write_leaves_the_destination_untouched(tmp_path, monkeypatch, failure, pixels):
    destination = tmp_path / "x.png"
    write_image(destination, _random("L"))
    before = destination.read_bytes()
    monkeypatch.setattr(*failure)
    with pytest.raises(ImageError, match="x.png.*disk full"):
        write_image(destination, pixels)
    assert destination.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]


def _encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def _corrupt_png() -> bytes:
    data = bytearray(_encoded(Image.fromarray(_random("RGB")), "PNG"))
    data[-20] ^= 0xFF  # inside IDAT: the CRC no longer matches
    return bytes(data)


BAD_FILES = {
    "missing.png": None,
    "folder.png": "folder",
    "empty.png": b"",
    "text.png": b"this is not an image\n",
    "truncated.png": _encoded(Image.fromarray(RNG.integers(0, 255, (64, 64, 3), dtype=np.uint8)), "PNG")[:-300],
    "truncated.jpg": _encoded(Image.fromarray(RNG.integers(0, 255, (64, 64, 3), dtype=np.uint8)), "JPEG")[:-300],
    "truncated16.png": cv2.imencode(".png", RNG.integers(0, 65535, (64, 64, 3)).astype(np.uint16))[1].tobytes()[:-300],
    "truncated.webp": _encoded(Image.fromarray(RNG.integers(0, 255, (64, 64, 3), dtype=np.uint8)), "WEBP")[:-100],
    "corrupt.png": _corrupt_png(),
    "animation.gif": _encoded(Image.fromarray(_random("L")), "GIF"),
    "zero-size.png": _png(0, 5, 8, 0, b""),
    "float.tif": _encoded(Image.new("F", (4, 4), 0.5), "TIFF"),
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_bad_input_is_one_line_naming_the_file(tmp_path, name):
    path = tmp_path / name
    if BAD_FILES[name] == "folder":
        path.mkdir()
    elif BAD_FILES[name] is not None:
        path.write_bytes(BAD_FILES[name])
    with pytest.raises(ImageError) as raised:
        read_image(path)
    assert name in str(raised.value) and "\n" not in str(raised.value)


def test_decompression_bomb_is_refused_from_the_header_without_decoding(tmp_path, monkeypatch):
    decoded = []
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self))
    monkeypatch.setattr(images.cv2, "imdecode", lambda *a: decoded.append(a))
    (tmp_path / "bomb.png").write_bytes(_png(100_000, 100_000, 8, 0, b"\0" * 10))  # 10^10 pixels in 80 bytes
    write_image(tmp_path / "small16.png", _random("RGB", np.uint16))
    for name, limit in [("bomb.png", images.DEFAULT_MAX_PIXELS), ("small16.png", 34)]:
        with pytest.raises(ImageError, match=f"{name}.*limit") as raised:
            read_image(tmp_path / name, max_pixels=limit)
        assert "\n" not in str(raised.value)
    assert decoded == []


def test_our_limit_replaces_pillows_global_one_for_one_call_only(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)
    write_image(tmp_path / "x.png", _random("RGB"))
    assert read_image(tmp_path / "x.png", max_pixels=35).pixels.shape == SHAPES["RGB"]
    assert Image.MAX_IMAGE_PIXELS == 10


def test_writing_what_cannot_be_written_names_the_file(tmp_path):
    for path, pixels in [(tmp_path / "x.gif", _random("RGB")), (tmp_path / "x", _random("RGB")),
                         (tmp_path / "x.png", np.zeros((4, 4, 3), np.float32)),
                         (tmp_path / "x.png", np.zeros((0, 4, 3), np.uint8))]:
        with pytest.raises(ImageError, match=path.name):
            write_image(path, pixels)
    assert list(tmp_path.iterdir()) == []


def test_formats_are_told_by_suffix():
    assert format_for("a/B.JPG") == "JPEG" and format_for("x.tif") == "TIFF" and format_for("x.webp") == "WEBP"
    assert is_image_path("x.PNG") and not is_image_path("x.gif") and not is_image_path("png")
    with pytest.raises(ImageError, match="x.gif"):
        format_for("x.gif")
