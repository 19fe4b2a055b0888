"""`upscale image` as a user runs it: folders, skipping, atomic writes, and every kind of bad input."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from upscale import images as images_module
from upscale.cli import main


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def save(path: Path, size=(12, 10), mode="RGB", colour=(200, 100, 50)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour if mode != "L" else 128).save(path)
    return path


def png_with_zero_width() -> bytes:
    """A PNG whose header says 0 x 10 pixels (with a correct CRC): a zero-size image."""
    ihdr = struct.pack(">IIBBBBB", 0, 10, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
            + struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF) + b"\x00\x00\x00\x00IEND\xaeB`\x82")


def test_folder_is_walked_recursively_and_mirrored(tmp_path, tiny_model_dir):
    src = tmp_path / "in"
    save(src / "a.png")
    save(src / "sub" / "deeper" / "b.jpg")
    (src / "notes.txt").write_text("not an image")
    (src / "sub" / "data.json").write_text("{}")
    result = run("image", str(src), "-o", str(tmp_path / "out"), "--model", str(tiny_model_dir), "--quiet")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out" / "a.png").size == (24, 20)
    assert Image.open(tmp_path / "out" / "sub" / "deeper" / "b.jpg").size == (24, 20)
    assert sorted(p.name for p in (tmp_path / "out").rglob("*") if p.is_file()) == ["a.png", "b.jpg"]


def test_existing_outputs_are_skipped_unless_overwrite(tmp_path, tiny_model_dir):
    src = save(tmp_path / "a.png")
    out = tmp_path / "out"
    first = json.loads(run("image", str(src), "-o", str(out), "--model", str(tiny_model_dir), "--json").output)
    assert len(first["done"]) == 1
    again = json.loads(run("image", str(src), "-o", str(out), "--model", str(tiny_model_dir), "--json").output)
    assert again["done"] == [] and len(again["skipped"]) == 1
    forced = run("image", str(src), "-o", str(out), "--model", str(tiny_model_dir), "--json", "--overwrite")
    assert len(json.loads(forced.output)["done"]) == 1


def test_default_output_sits_beside_the_input_and_never_replaces_it(tmp_path, tiny_model_dir):
    src = save(tmp_path / "photo.png")
    before = src.read_bytes()
    assert run("image", str(src), "--model", str(tiny_model_dir), "-q").exit_code == 0
    assert (tmp_path / "photo_x2.png").is_file() and src.read_bytes() == before
    clash = run("image", str(src), "--model", str(tiny_model_dir), "--suffix", "", "--json")
    assert clash.exit_code == 1 and "input" in json.loads(clash.output)["failed"][0]["error"]
    assert src.read_bytes() == before


def test_globs_formats_and_outscale(tmp_path, tiny_model_dir):
    for name in ("a.png", "b.png", "c.bmp"):
        save(tmp_path / "g" / name)
    result = run("image", str(tmp_path / "g" / "*.png"), "-o", str(tmp_path / "out"), "--model",
                 str(tiny_model_dir), "--format", "webp", "--outscale", "1.5", "-q")
    assert result.exit_code == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.webp", "b.webp"]
    assert Image.open(tmp_path / "out" / "a.webp").size == (18, 15)
    said = run("image", str(tmp_path / "g" / "c.bmp"), "-o", str(tmp_path / "out"), "--model", str(tiny_model_dir),
               "--outscale", "3")  # the factor the output has, and that a resize made it
    assert "upscaled 1 file(s) x3 (x2 by tiny-x2, then a resize)" in said.output
    plain = run("image", str(tmp_path / "g" / "c.bmp"), "-o", str(tmp_path / "plain"), "--model", str(tiny_model_dir))
    assert "upscaled 1 file(s) x2 on" in plain.output


def test_interrupted_run_leaves_no_half_written_file_and_resumes(tmp_path, tiny_model_dir, monkeypatch):
    src = tmp_path / "in"
    for name in ("1.png", "2.png", "3.png"):
        save(src / name)
    out = tmp_path / "out"
    real_encode = images_module._encode
    calls = []

    def encode_then_die(f, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            f.write(b"\x89PNG half a file")
            raise KeyboardInterrupt
        return real_encode(f, *args, **kwargs)

    monkeypatch.setattr(images_module, "_encode", encode_then_die)
    interrupted = CliRunner().invoke(main, ["image", str(src), "-o", str(out), "--model", str(tiny_model_dir), "-q"])
    assert interrupted.exit_code == 130
    assert sorted(p.name for p in out.iterdir()) == ["1.png"]  # no partial 2.png, no temporary file
    Image.open(out / "1.png").verify()
    monkeypatch.setattr(images_module, "_encode", real_encode)
    resumed = json.loads(run("image", str(src), "-o", str(out), "--model", str(tiny_model_dir), "--json").output)
    assert [Path(p).name for p in resumed["done"]] == ["2.png", "3.png"] and len(resumed["skipped"]) == 1


@pytest.mark.parametrize("kind", ["missing", "corrupt", "truncated", "zero-size", "bomb", "unsupported"])
def test_each_bad_input_is_one_line_and_the_run_goes_on(tmp_path, tiny_model_dir, kind):
    good = save(tmp_path / "good.png", size=(12, 10))
    bad = tmp_path / {"unsupported": "anim.gif"}.get(kind, "bad.png")
    if kind == "corrupt":
        bad.write_bytes(b"this is not a png at all")
    elif kind == "truncated":
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)).save(bad)
        bad.write_bytes(bad.read_bytes()[:300])
    elif kind == "zero-size":
        bad.write_bytes(png_with_zero_width())
    elif kind == "bomb":
        save(bad, size=(400, 300))
    elif kind == "unsupported":
        Image.new("RGB", (8, 8)).save(bad)
    args = ["image", str(good), str(bad), "-o", str(tmp_path / "out"), "--model", str(tiny_model_dir)]
    result = CliRunner().invoke(main, args + (["--max-pixels", "1000"] if kind == "bomb" else []))
    assert result.exit_code == 1
    assert (tmp_path / "out" / "good.png").is_file()
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and bad.name in errors[0], result.output
    assert "Traceback" not in result.output


def test_unwritable_output_is_reported(tmp_path, tiny_model_dir):
    src = save(tmp_path / "a.png")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run("image", str(src), "-o", str(blocker / "out"), "--model", str(tiny_model_dir), "--json")
    assert result.exit_code == 1
    assert "a.png" in json.loads(result.output)["failed"][0]["path"]


def test_model_scale_mismatch_is_an_error_not_a_wrong_image(tmp_path, tiny_model_dir):
    src = save(tmp_path / "a.png")
    result = run("image", str(src), "--model", str(tiny_model_dir), "--scale", "4")
    assert result.exit_code == 1
    assert "upscales by 2" in result.output and "--outscale" in result.output
    assert not (tmp_path / "a_x4.png").exists() and not (tmp_path / "a_x2.png").exists()


def test_unknown_model_and_bad_options_are_one_line(tmp_path, tiny_model_dir):
    src = save(tmp_path / "a.png")
    result = run("image", str(src), "--model", str(tmp_path / "nope"))
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "unknown model" in result.output
    assert run("image", str(src), "--tile", "abc").exit_code == 2
    half = run("image", str(src), "--device", "cpu", "--precision", "fp16", "--model", str(tiny_model_dir))
    assert half.exit_code == 1 and "only on a GPU" in half.output and half.output.count("\n") == 1


def test_modes_round_trip_through_the_command(tmp_path, tiny_model_dir):
    src = tmp_path / "modes"
    save(src / "gray.png", mode="L")
    Image.new("LA", (8, 6), (100, 200)).save(src / "gray_alpha.png")
    Image.new("RGBA", (8, 6), (1, 2, 3, 128)).save(src / "rgba.png")
    Image.new("P", (8, 6), 3).save(src / "palette.png")
    Image.fromarray(np.full((6, 8), 1000, np.uint16)).save(src / "deep.png")
    assert run("image", str(src), "-o", str(tmp_path / "out"), "--model", str(tiny_model_dir), "-q").exit_code == 0
    modes = {p.name: Image.open(p).mode for p in (tmp_path / "out").iterdir()}
    assert modes["gray.png"] == "L" and modes["gray_alpha.png"] == "LA" and modes["rgba.png"] == "RGBA"
    assert modes["palette.png"] == "RGB" and modes["deep.png"].startswith("I")


def test_a_suffix_cannot_take_outputs_out_of_their_folder(tmp_path, tiny_model_dir):
    src = tmp_path / "in"
    src.mkdir()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(src / "a.png")
    out = tmp_path / "out"
    for suffix in ("/../../evil", "..", "a/b", "x\\y"):
        result = CliRunner().invoke(main, ["image", str(src), "-o", str(out), "--model", str(tiny_model_dir),
                                           "--suffix", suffix, "--quiet"])
        assert result.exit_code != 0 and "--suffix" in result.output, (suffix, result.output)
    assert not list(tmp_path.rglob("*evil*")) and not out.exists()


def test_a_second_run_skips_everything_and_never_takes_its_outputs_for_inputs(tmp_path, tiny_model_dir):
    work = tmp_path / "work"
    save(work / "base.png")
    for _ in range(2):
        result = run("image", str(work), "--model", str(tiny_model_dir), "--json")
        assert result.exit_code == 0, result.output
    assert sorted(p.name for p in work.iterdir()) == ["base.png", "base_x2.png"]
    assert json.loads(result.output)["skipped"] == [str(work / "base_x2.png")]
    work2 = tmp_path / "work2"
    save(work2 / "a.png")
    for _ in range(2):
        assert run("image", str(work2), "-o", str(work2 / "big"), "--model", str(tiny_model_dir), "-q").exit_code == 0
    assert not (work2 / "big" / "big").exists() and (work2 / "big" / "a.png").is_file()


def test_globs_never_follow_a_link_loop_and_mirror_the_tree(tmp_path, tiny_model_dir):
    tree = tmp_path / "tree"
    save(tree / "one" / "same.png")
    save(tree / "two" / "same.png")
    (tree / "one" / "loop").symlink_to(tree, target_is_directory=True)
    result = run("image", str(tree / "**" / "*.png"), "-o", str(tmp_path / "out"), "--model", str(tiny_model_dir),
                 "-q")
    assert result.exit_code == 0, result.output
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.png")) == \
        ["one/same.png", "two/same.png"]


def test_hidden_files_and_stale_temporary_files_are_not_inputs(tmp_path, tiny_model_dir):
    folder = tmp_path / "in"
    save(folder / "a.png")
    (folder / ".a.0badc0de.tmp.png").write_bytes(b"")  # left by a killed run
    (folder / "._a.png").write_bytes(b"\x00\x05\x16\x07")  # macOS AppleDouble
    result = run("image", str(folder), "-o", str(tmp_path / "out"), "--model", str(tiny_model_dir), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["done"] == [str(tmp_path / "out" / "a.png")]


def test_output_files_need_an_image_extension_that_agrees_with_format(tmp_path, tiny_model_dir):
    src = save(tmp_path / "a.png")
    for args, message in ((["-o", str(tmp_path / "result.gif")], ".gif is not a format"),
                          (["-o", str(tmp_path / "result.avif")], ".avif is not a format"),
                          (["-o", str(tmp_path / "x.jpg"), "--format", "png"], "disagrees with -o")):
        result = run("image", str(src), "--model", str(tiny_model_dir), *args)
        assert result.exit_code == 1 and message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "result.gif").exists() and not (tmp_path / "x.jpg").exists()


def test_an_input_without_images_is_an_error_for_folders_and_globs_alike(tmp_path, tiny_model_dir):
    (tmp_path / "empty").mkdir()
    for item, message in ((str(tmp_path / "empty"), "no images in this folder"),
                          (str(tmp_path / "empty" / "*.png"), "no image matches")):
        result = run("image", item, "--model", str(tiny_model_dir), "--json")
        assert result.exit_code == 1 and message in json.loads(result.output)["failed"][0]["error"]


def test_stale_temporary_files_of_a_killed_run_are_cleaned_up(tmp_path, tiny_model_dir):
    import os
    import time

    src = save(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    stale, fresh = out / ".a.0badc0de.tmp.png", out / ".a.12345678.tmp.png"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"being written")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    assert run("image", str(src.parent), "-o", str(out), "--model", str(tiny_model_dir), "-q").exit_code == 0
    assert not stale.exists() and fresh.exists() and (out / "a.png").is_file()


def test_debug_works_after_the_subcommand_and_shows_per_file_tracebacks(tmp_path, tiny_model_dir):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    result = CliRunner().invoke(main, ["image", str(bad), "--model", str(tiny_model_dir), "--debug"])
    assert result.exit_code == 1 and "Traceback" in result.output


def test_one_line_errors_stay_one_line_when_stderr_is_not_a_terminal(tmp_path, tiny_model_dir):
    deep = tmp_path / ("a-rather-long-folder-name-" * 4) / "missing-file-with-a-long-name.png"
    result = CliRunner().invoke(main, ["image", str(deep), "--model", str(tiny_model_dir)])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors and str(deep) in errors[0]  # not cut at 80 columns


@pytest.mark.parametrize("name, fmt", [("anim.webp", "WEBP"), ("anim.png", "PNG"), ("pages.tif", "TIFF")])
def test_animations_and_multi_page_files_are_refused_not_cut_to_their_first_frame(tmp_path, tiny_model_dir,
                                                                                  name, fmt):
    frames = [Image.new("RGB", (12, 10), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    path = tmp_path / name
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    result = run("image", str(path), "-o", str(tmp_path / "out"), "--model", str(tiny_model_dir), "--json")
    assert result.exit_code == 1
    error = json.loads(result.output)["failed"][0]["error"]
    assert "3 frames" in error and "upscale video" in error and not (tmp_path / "out").exists()


def test_a_cmyk_jpeg_never_passes_its_cmyk_profile_to_an_rgb_output(tmp_path, tiny_model_dir):
    header = bytearray(128)
    header[12:16], header[16:20], header[36:40] = b"prtr", b"CMYK", b"acsp"  # a CMYK profile, unusable
    src = tmp_path / "print.jpg"
    Image.new("CMYK", (12, 10), (0, 128, 255, 0)).save(src, icc_profile=bytes(header) + bytes(4))
    out = tmp_path / "out.png"
    result = run("image", str(src), "-o", str(out), "--model", str(tiny_model_dir), "--json")
    assert result.exit_code == 0, result.output
    with Image.open(out) as image:
        assert image.mode == "RGB" and not image.info.get("icc_profile")
    assert "CMYK colour profile" in json.loads(result.output)["notes"][0]


def test_a_bug_says_it_is_one_and_exits_2_while_user_errors_exit_1(tmp_path, tiny_model_dir, monkeypatch):
    import upscale.cli as cli

    src = save(tmp_path / "a.png")
    user = CliRunner().invoke(main, ["image", str(src), "--model", str(tmp_path / "no-such-model")])
    assert user.exit_code == 1 and user.output.startswith("error: ") and "a bug in upscale" not in user.output

    def broken(*args, **kwargs):
        raise KeyError("scale")

    monkeypatch.setattr(cli, "build_upscaler", broken)
    bug = CliRunner().invoke(main, ["image", str(src)])
    assert bug.exit_code == 2 and "unexpected KeyError" in bug.output and "--debug" in bug.output
    assert len(bug.output.strip().splitlines()) == 1
    debug = CliRunner().invoke(main, ["image", str(src), "--debug"])
    assert isinstance(debug.exception, KeyError)  # the traceback goes through


def test_an_output_name_without_extension_is_a_folder_and_says_so(tmp_path, tiny_model_dir):
    src = save(tmp_path / "a.png")
    result = run("image", str(src), "-o", str(tmp_path / "noext"), "--model", str(tiny_model_dir), "--json")
    assert result.exit_code == 0
    assert (tmp_path / "noext" / "a.png").is_file()
    assert "is a folder" in json.loads(result.output)["notes"][0]
