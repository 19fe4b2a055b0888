"""The engine's promises: seamless tiles, every pixel kind in and out, no alpha fringes, safe precision."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_tiny_model
from trinas.export import load_model
from upscale.engine import EngineError, Upscaler, pick_dtype


def _upscaler(folder, **kwargs) -> Upscaler:
    return Upscaler(load_model(folder), device="cpu", **kwargs)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_tiled_output_equals_whole_image_output(tmp_path, scale):
    folder = make_tiny_model(tmp_path / "m", scale=scale, width=8, cells=3)
    rng = np.random.default_rng(0)
    image = rng.random((53, 41, 3), dtype=np.float32)
    whole = _upscaler(folder, tile=0).upscale_array(image)
    tiled = _upscaler(folder, tile=16).upscale_array(image)
    assert tiled.shape == (53 * scale, 41 * scale, 3)
    np.testing.assert_allclose(tiled, whole, atol=2e-5)


def test_tiles_without_context_show_seams(tmp_path):
    """The property above is not vacuous: too little context changes pixels along tile borders."""
    folder = make_tiny_model(tmp_path / "m", width=8, cells=3)
    image = np.random.default_rng(1).random((48, 48, 3), dtype=np.float32)
    whole = _upscaler(folder, tile=0).upscale_array(image)
    seamy = _upscaler(folder, tile=16, tile_pad=0).upscale_array(image)
    assert np.abs(seamy - whole).max() > 1e-3


def test_out_of_memory_splits_the_tile_and_retries(tmp_path, monkeypatch):
    up = _upscaler(make_tiny_model(tmp_path / "m"), tile=0)
    real_forward = up.model.forward
    sizes = []

    def forward(x):
        sizes.append(max(x.shape[-2:]))
        if max(x.shape[-2:]) > 40:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_forward(x)

    monkeypatch.setattr(up.model, "forward", forward)
    image = np.random.default_rng(2).random((64, 64, 3), dtype=np.float32)
    out = up.upscale_array(image)
    reference = _upscaler(make_tiny_model(tmp_path / "m2"), tile=0).upscale_array(image)
    np.testing.assert_allclose(out, reference, atol=2e-5)
    assert sizes[0] == 64 and max(sizes[1:]) <= 40 + up.tile_pad


@pytest.mark.parametrize("shape,dtype", [((20, 30), np.uint8), ((20, 30, 2), np.uint8), ((20, 30, 3), np.uint8),
                                         ((20, 30, 4), np.uint8), ((20, 30, 3), np.uint16), ((20, 30), np.uint16),
                                         ((20, 30, 3), np.float32)])
def test_every_pixel_kind_comes_back_as_the_same_kind(tiny_model_dir, shape, dtype):
    up = _upscaler(tiny_model_dir)
    peak = np.iinfo(dtype).max if dtype != np.float32 else 1.0
    pixels = (np.random.default_rng(3).random(shape) * peak).astype(dtype)
    out = up.upscale_array(pixels)
    assert out.dtype == dtype
    assert out.shape == (shape[0] * 2, shape[1] * 2) + shape[2:]


def test_16_bit_precision_survives_the_engine(tmp_path):
    """Values 0..255 stored in 16 bits stay small 16-bit values: no 8-bit rescale by guessing from values."""
    up = _upscaler(make_tiny_model(tmp_path / "m", bicubic=True))
    pixels = np.full((16, 16, 3), 200, dtype=np.uint16)
    out = up.upscale_array(pixels)
    assert out.dtype == np.uint16 and np.all(np.abs(out.astype(int) - 200) <= 1)


def test_alpha_edges_have_no_dark_fringe(tmp_path):
    """A red disc on fully transparent black: every visible output pixel stays red."""
    up = _upscaler(make_tiny_model(tmp_path / "m", bicubic=True))
    yy, xx = np.mgrid[:64, :64]
    inside = (yy - 32) ** 2 + (xx - 32) ** 2 < 20**2
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[inside] = (230, 20, 20, 255)
    out = up.upscale_array(rgba)
    visible = out[..., 3] >= 8
    assert visible.sum() > inside.sum() * 3  # the disc grew with the image
    assert out[visible][:, 0].min() >= 200, "dark fringe: red channel dropped at the edge"
    assert out[visible][:, 1:3].max() <= 50
    # Without bleeding, the same upscale of the RGB drags black into the edge (what the fix is for).
    naive = up.upscale_array(rgba[..., :3])
    assert naive[visible][:, 0].min() < 150


def test_pil_images_and_outscale(tiny_model_dir):
    up = _upscaler(tiny_model_dir)
    out = up(Image.new("RGB", (30, 20), (10, 200, 30)))
    assert isinstance(out, Image.Image) and out.size == (60, 40)
    assert up(np.zeros((20, 30, 3), np.uint8), outscale=1.5).shape == (30, 45, 3)
    assert up(np.zeros((20, 30, 3), np.uint8), outscale=3).shape == (60, 90, 3)


def test_half_precision_is_refused_on_cpu():
    with pytest.raises(EngineError, match="only on a GPU"):
        pick_dtype(torch.device("cpu"), "fp16", True)
    assert pick_dtype(torch.device("cpu"), "auto", True) == torch.float32


@pytest.mark.parametrize("tta", [False, True])
def test_bf16_on_the_cpu_is_autocast_close_to_fp32(tmp_path, tta):
    """bf16 on the CPU keeps the weights and the output in fp32 and runs the convolutions in bf16: the output
    stays within a few 8-bit levels of fp32's, and differs from it (bf16 really ran)."""
    folder = make_tiny_model(tmp_path / "m", scale=2, width=8, cells=2)
    image = (np.random.default_rng(2).random((40, 36, 3)) * 255).astype(np.uint8)
    fp32 = _upscaler(folder, tta=tta).upscale_array(image).astype(int)
    up = _upscaler(folder, precision="bf16", tta=tta)
    assert up.dtype == torch.bfloat16 and up.autocast
    assert {p.dtype for p in up.model.parameters()} == {torch.float32}
    bf16 = up.upscale_array(image).astype(int)
    assert bf16.shape == fp32.shape and np.abs(bf16 - fp32).max() <= 3
    x = torch.rand(1, 3, 8, 8)
    with torch.inference_mode():  # the convolutions themselves ran in bf16: not bit-equal to fp32
        assert not torch.equal(up.model(x), up._model_on(x))


def test_bad_arrays_are_clear_errors(tiny_model_dir):
    up = _upscaler(tiny_model_dir)
    with pytest.raises(EngineError, match="zero"):
        up.upscale_array(np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(EngineError, match="shape"):
        up.upscale_array(np.zeros((5, 5, 7), np.uint8))


def test_cuda_request_without_gpu_is_a_clear_error(tiny_model_dir):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(EngineError, match="no CUDA"):
        Upscaler(load_model(tiny_model_dir), device="cuda")


def test_the_python_api_treats_input_like_the_command_line(tiny_model_dir, tmp_path):
    """EXIF orientation applied to PIL input, float pixels outside [0, 1] or NaN refused, paths and tensors
    named in the error instead of an AttributeError."""
    import numpy as np
    import pytest
    import torch
    from PIL import Image

    from upscale import Upscaler
    from upscale.engine import EngineError

    up = Upscaler.from_pretrained(str(tiny_model_dir), device="cpu")
    image = Image.new("RGB", (20, 10), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees when shown
    image.save(tmp_path / "turned.jpg", exif=exif)
    with Image.open(tmp_path / "turned.jpg") as opened:
        assert up(opened).size == (20, 40)  # upright 10x20, doubled
    with pytest.raises(EngineError, match=r"must be in \[0, 1\]"):
        up(np.full((4, 4, 3), 255.0, dtype=np.float32))
    with pytest.raises(EngineError, match="NaN"):
        up(np.full((4, 4, 3), np.nan, dtype=np.float32))
    with pytest.raises(TypeError, match="a path"):
        up(str(tmp_path / "turned.jpg"))
    with pytest.raises(TypeError, match="run_tensor"):
        up(torch.rand(1, 3, 4, 4))


def test_an_image_too_large_for_free_memory_is_refused_saying_what_it_needs(tiny_model_dir, monkeypatch):
    import numpy as np
    import pytest

    from upscale import Upscaler, engine

    up = Upscaler.from_pretrained(str(tiny_model_dir), device="cpu")
    monkeypatch.setattr(engine, "_free_memory", lambda device: 600 << 20)
    with pytest.raises(engine.EngineError, match=r"needs about 0\.\d GB of memory at x2, and 0\.6 GB is free"):
        up.upscale_array(np.zeros((3000, 3000, 3), dtype=np.uint8))
    assert up.upscale_array(np.zeros((8, 8, 3), dtype=np.uint8)).shape == (16, 16, 3)


def test_the_output_is_written_tile_by_tile_in_its_own_pixel_type(tiny_model_dir, monkeypatch):
    """No float buffer of the whole output: the largest float tensor the engine makes is a tile's."""
    import numpy as np
    import torch

    from upscale import Upscaler

    up = Upscaler.from_pretrained(str(tiny_model_dir), device="cpu", tile=16)
    biggest = []
    real_empty = torch.empty

    def watching_empty(*size, **kwargs):
        tensor = real_empty(*size, **kwargs)
        biggest.append(tensor.numel())
        return tensor

    monkeypatch.setattr(torch, "empty", watching_empty)
    out = up.upscale_array(np.zeros((64, 64, 3), dtype=np.uint8))
    assert out.dtype == np.uint8 and out.shape == (128, 128, 3)
    assert not biggest or max(biggest) < 128 * 128 * 3  # (before: a 128x128x3 float32 output buffer)


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="torch.compile needs a C compiler")
def test_a_compiled_model_gives_the_same_pixels(tiny_model_dir):
    """torch.compile fuses kernels; the output must not change beyond float rounding."""
    image = np.random.default_rng(0).integers(0, 256, (20, 28, 3), dtype=np.uint8)
    eager = Upscaler.from_pretrained(str(tiny_model_dir), tile=0)
    compiled = Upscaler.from_pretrained(str(tiny_model_dir), tile=0, compiled=True)
    assert np.abs(compiled.upscale_array(image).astype(int) - eager.upscale_array(image).astype(int)).max() <= 1


def test_an_input_no_larger_than_one_tile_runs_whole_by_default(tmp_path, monkeypatch):
    """Cut at 256, a 320x180 input is two tiles, the second mostly context (slower than the whole): the engine's
    default runs an input of at most one tile's area whole, and the latency model predicts the same tiles."""
    from trinas.tiling import CPU_TILE, engine_tile

    assert engine_tile("cpu", 180, 320) == 0 and engine_tile("cpu", 270, 480) == CPU_TILE
    assert engine_tile("cpu", 180, 320, tile=CPU_TILE) == CPU_TILE  # asked for, kept
    assert engine_tile("cuda", 1080, 1920) == 0
    up = _upscaler(make_tiny_model(tmp_path / "m"), tile="auto")
    monkeypatch.setattr(up, "auto_tile", lambda: 16)
    for (h, w), expected in (((12, 21), 1), ((17, 16), 2)):  # 252 and 272 pixels against a tile of 256
        counts = []
        up.run_tensor(torch.rand(1, 3, h, w), on_tile=lambda done, total: counts.append(total))
        assert counts == [expected] * expected


def test_the_tiles_of_one_output_frame_are_the_engines():
    """What the search, the pruning and the latency benchmarks time for one frame: the engine's tiles of its input."""
    from trinas.tiling import CPU_TILE, frame_tiles, tile_shapes

    assert frame_tiles("cpu", 720, 1280, 2, 8) == tile_shapes(360, 640, CPU_TILE, 8)
    assert len(frame_tiles("cpu", 720, 1280, 2, 8)) == 6  # 640x360 at 256: three columns, two rows
    assert frame_tiles("cpu", 720, 1280, 4, 8) == [(180, 320)]  # one tile's area or less: whole
    assert frame_tiles("cpu", 720, 1280, 2, 8, tile=128) == tile_shapes(360, 640, 128, 8)
    assert frame_tiles("cuda", 1080, 1920, 2, 8) == [(540, 960)]
