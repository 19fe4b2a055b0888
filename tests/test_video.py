"""`upscale video`: what users notice about a video is kept (frames, timing, audio, subtitles, rotation,
colour), bad input gives one line, and a stopped run leaves nothing that looks finished.

Every clip is generated here with PyAV: tiny (32x24) and short, so the whole file runs in seconds.
"""

from __future__ import annotations

import _thread
import json
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from upscale.cli import main
from upscale.engine import Upscaler
from upscale.video import Cancelled, VideoError, VideoOptions, kept_frames, upscale_frames, upscale_video

W, H = 32, 24


# ----------------------------------------------------------------------------- clips
def pattern(i: int, w: int = W, h: int = H) -> np.ndarray:
    """A moving gradient: every frame differs, so dropped or repeated frames would show."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.empty((h, w, 3), np.uint8)
    img[..., 0] = (x * 7 + i * 9) % 256
    img[..., 1] = (y * 9 + i * 5) % 256
    img[..., 2] = ((x + y) * 4 + i * 3) % 256
    return img


def make_clip(path: Path, frames: int = 24, fps: int = 24, codec: str = "libx264", vfr: bool = False,
              rotate: int | None = None, audio: bool = True, subtitles: bool = False, chapters: bool = False,
              options: dict | None = None, colour: dict | None = None, size: tuple[int, int] = (W, H),
              offset: Fraction = Fraction(0), pix_fmt: str = "yuv420p") -> Path:
    """Write a test clip: moving pattern video, optional 440 Hz sine (AAC), SubRip subtitles, chapters;
    every stream's timestamps start at `offset` seconds (as MPEG-TS from cameras and broadcast do)."""
    w, h = size
    out = av.open(str(path), "w")
    video = out.add_stream(codec, rate=fps, options=options or {})
    video.width, video.height, video.pix_fmt = w, h, pix_fmt
    tb = Fraction(1, 1000) if vfr else Fraction(1, fps)
    video.codec_context.time_base = tb
    for key, value in (colour or {}).items():
        setattr(video.codec_context, key, value)
    if rotate is not None:
        video.set_display_rotation(rotate)
    out.metadata["title"] = "test clip"
    sound = out.add_stream("aac", rate=8000) if audio else None
    if sound is not None:
        sound.layout = "mono"
    text = out.add_mux_stream("subrip", time_base=Fraction(1, 1000)) if subtitles else None
    if chapters:
        out.set_chapters([{"id": 1, "start": 0, "end": 500, "time_base": Fraction(1, 1000), "metadata": {"title": "one"}},
                          {"id": 2, "start": 500, "end": 1000, "time_base": Fraction(1, 1000), "metadata": {"title": "two"}}])
    pts = round(offset / tb)
    for i in range(frames):
        frame = av.VideoFrame.from_ndarray(pattern(i, w, h), format="rgb24")
        if colour:
            frame = frame.reformat(format="yuv420p", dst_colorspace=1, dst_color_range=colour.get("color_range"))
        frame.pts, frame.time_base = pts, tb
        pts += (20, 40, 60)[i % 3] if vfr else 1
        out.mux(video.encode(frame))
    out.mux(video.encode(None))
    if sound is not None:
        samples = (0.3 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)).astype(np.float32)
        for k in range(0, len(samples), 1024):
            chunk = av.AudioFrame.from_ndarray(samples[None, k:k + 1024], format="flt", layout="mono")
            chunk.sample_rate, chunk.pts, chunk.time_base = 8000, k + round(offset * 8000), Fraction(1, 8000)
            out.mux(sound.encode(chunk))
        out.mux(sound.encode(None))
    if text is not None:
        for j, line in enumerate((b"hello", b"world")):
            packet = av.Packet(line)
            packet.pts = packet.dts = j * 400
            packet.duration, packet.time_base, packet.stream = 300, Fraction(1, 1000), text
            out.mux(packet)
    out.close()
    return path


def video_frames(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as c:
        return list(c.decode(c.streams.video[0]))


def times(frames: list[av.VideoFrame]) -> list[Fraction]:
    return [f.pts * f.time_base for f in frames]


def packets(path: Path, kind: str) -> list[tuple[Fraction, bytes]]:
    """(time, payload) of every packet of the first stream of `kind`."""
    with av.open(str(path)) as c:
        stream = getattr(c.streams, kind)[0]
        return [(p.pts * p.time_base, bytes(p)) for p in c.demux(stream) if p.size]


def leftovers(folder: Path) -> list[str]:
    """Temporary files a finished or stopped run must not leave behind."""
    return sorted(p.name for p in folder.rglob("*") if ".partial" in p.name or ".tmp" in p.name)


class Nearest:
    """A stand-in engine that repeats pixels: exact, so colour round trips can be checked; `delay` slows it."""

    scale, channels = 2, 3

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    def run_tensor(self, x: torch.Tensor, on_tile=None) -> torch.Tensor:
        time.sleep(self.delay)
        if on_tile:
            on_tile(1, 1)
        return x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)


@pytest.fixture
def upscaler(tiny_model_dir: Path) -> Upscaler:
    return Upscaler.from_pretrained(str(tiny_model_dir), tile=0)


# ----------------------------------------------------------------------------- what is kept
def test_mkv_keeps_frames_timestamps_audio_subtitles_chapters(tmp_path, upscaler):
    src = make_clip(tmp_path / "in.mkv", subtitles=True, chapters=True)
    seen = []
    report = upscale_video(src, tmp_path / "out.mkv", upscaler, progress=lambda done, total: seen.append((done, total)))

    before, after = video_frames(src), video_frames(tmp_path / "out.mkv")
    assert len(after) == len(before) == report.frames == 24
    assert times(after) == times(before)
    assert (after[0].width, after[0].height) == (W * 2, H * 2)
    assert after[-1].duration * after[-1].time_base == before[-1].duration * before[-1].time_base
    assert packets(tmp_path / "out.mkv", "audio") == packets(src, "audio")        # byte for byte, same times
    assert packets(tmp_path / "out.mkv", "subtitles") == [(Fraction(0), b"hello"), (Fraction(2, 5), b"world")]
    with av.open(str(src)) as a, av.open(str(tmp_path / "out.mkv")) as b:
        assert [c["metadata"]["title"] for c in b.chapters()] == ["one", "two"]
        assert [(c["start"], c["end"]) for c in b.chapters()] == [(c["start"], c["end"]) for c in a.chapters()]
        assert b.metadata["title"] == "test clip"
        assert abs(b.duration - a.duration) <= 0.03 * av.time_base  # within one AAC frame of padding
    # Matroska has no frame count: progress runs against an estimate and ends at the real count
    assert not report.total_exact and abs(report.total - 24) <= 1
    assert seen[-1][0] == 24 and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert [c.split(" (")[0] for c in report.copied] == ["audio #1", "subtitle #2"] and report.warnings == []
    assert leftovers(tmp_path) == []


def test_variable_frame_rate_survives_a_change_of_container(tmp_path, upscaler):
    src = make_clip(tmp_path / "vfr.mkv", frames=18, vfr=True)
    upscale_video(src, tmp_path / "vfr.mp4", upscaler)
    before, after = video_frames(src), video_frames(tmp_path / "vfr.mp4")
    assert times(after) == times(before)
    assert len({b - a for a, b in zip(times(after), times(after)[1:])}) == 3  # 20, 40 and 60 ms gaps kept
    assert packets(tmp_path / "vfr.mp4", "audio") == packets(src, "audio")


def test_exact_frame_count_and_rotation_are_kept(tmp_path, upscaler):
    src = make_clip(tmp_path / "rot.mp4", rotate=90)
    with av.open(str(src)) as c:
        assert c.streams.video[0].frames == 24  # mp4 states its frame count
    report = upscale_video(src, tmp_path / "rot_up.mp4", upscaler)
    assert report.total_exact and report.total == report.frames == 24
    for out in (tmp_path / "rot_up.mp4", tmp_path / "rot_up.mkv"):
        if not out.exists():
            upscale_video(src, out, upscaler)
        frames = video_frames(out)
        assert frames[0].rotation == 90 and len(frames) == 24
        assert (frames[0].width, frames[0].height) == (W * 2, H * 2)  # stored size x scale, rotation as metadata


def test_container_without_rotation_or_subtitles_says_so(tmp_path, upscaler):
    src = make_clip(tmp_path / "in.mkv", rotate=90, subtitles=True, audio=False)
    report = upscale_video(src, tmp_path / "out.avi", upscaler, VideoOptions(codec="mpeg4"))
    assert len(video_frames(tmp_path / "out.avi")) == 24
    assert any("cannot store rotation" in w for w in report.warnings)
    assert any("subtitle #1" in w and "not kept" in w for w in report.warnings)


def test_matroska_attachments_are_copied(tmp_path):
    plain = make_clip(tmp_path / "plain.mkv", frames=3, audio=False)
    src = tmp_path / "fonts.mkv"
    with av.open(str(plain)) as a, av.open(str(src), "w") as out:
        video = out.add_stream_from_template(a.streams.video[0])
        out.add_attachment("sub.ttf", "font/ttf", b"FONT" * 64)
        for packet in a.demux(a.streams.video[0]):
            if packet.size:
                packet.stream = video
                out.mux(packet)
    report = upscale_video(src, tmp_path / "out.mkv", Nearest())
    with av.open(str(tmp_path / "out.mkv")) as c:
        assert [(s.metadata["filename"], s.data) for s in c.streams.attachments] == [("sub.ttf", b"FONT" * 64)]
    assert report.copied == ["attachment #1 (sub.ttf)"]


def test_colour_range_and_matrix_tags_and_values_survive(tmp_path):
    colour = {"color_range": 2, "colorspace": 1, "color_primaries": 1, "color_trc": 1}  # full range BT.709
    src = make_clip(tmp_path / "full.mkv", codec="ffv1", colour=colour, audio=False, frames=4)
    upscale_video(src, tmp_path / "out.mkv", Nearest(), VideoOptions(codec="ffv1"))
    before, after = video_frames(src), video_frames(tmp_path / "out.mkv")
    with av.open(str(tmp_path / "out.mkv")) as c:
        ctx = c.streams.video[0].codec_context
        assert (ctx.color_range, ctx.colorspace, ctx.color_primaries, ctx.color_trc) == (2, 1, 1, 1)
    for a, b in zip(before, after):
        a_rgb = a.to_ndarray(format="rgb24", src_color_range=2).astype(int)
        b_rgb = b.to_ndarray(format="rgb24", src_color_range=2)[::2, ::2].astype(int)
        assert np.abs(a_rgb - b_rgb).mean() < 2.0  # no shift from a wrong range or matrix


def test_start_and_end_trim_every_stream_alike(tmp_path, upscaler):
    src = make_clip(tmp_path / "in.mkv", subtitles=True)
    start, end = Fraction(1, 4), Fraction(3, 4)
    report = upscale_video(src, tmp_path / "cut.mkv", upscaler, VideoOptions(start=start, end=end))
    kept = [t - start for t in times(video_frames(src)) if start <= t < end]
    assert times(video_frames(tmp_path / "cut.mkv")) == kept and report.frames == len(kept) == 12
    audio = [(t - start, data) for t, data in packets(src, "audio") if start <= t < end]
    assert packets(tmp_path / "cut.mkv", "audio") == audio  # whole packets, same bytes, same shift
    assert packets(tmp_path / "cut.mkv", "subtitles") == [(Fraction(3, 20), b"world")]


# ----------------------------------------------------------------------------- damaged and wrong input
def test_corrupt_packets_are_skipped_with_a_count_and_timing_kept(tmp_path, upscaler):
    src = make_clip(tmp_path / "clean.mkv", frames=30, codec="ffv1", options={"slicecrc": "1"}, audio=False)
    with av.open(str(src)) as c:
        spots = [(p.pos, p.size) for p in c.demux(c.streams.video[0]) if p.size]
    data = bytearray(src.read_bytes())
    for pos, size in (spots[10], spots[11], spots[20]):
        for j in range(pos + size // 4, pos + size - 2):
            data[j] ^= 0xFF
    bad = tmp_path / "bad.mkv"
    bad.write_bytes(bytes(data))

    report = upscale_video(bad, tmp_path / "out.mkv", upscaler)
    assert report.corrupt_packets == 3 and report.frames == 27
    assert any("3 corrupt packet" in w for w in report.warnings)
    lost = {times(video_frames(src))[i] for i in (10, 11, 20)}
    assert times(video_frames(tmp_path / "out.mkv")) == [t for t in times(video_frames(src)) if t not in lost]


def test_bad_inputs_and_outputs_are_one_line_errors(tmp_path, upscaler):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 50)
    with pytest.raises(VideoError, match="not a video"):
        upscale_video(text, tmp_path / "a.mp4", upscaler)
    sound = tmp_path / "sound.m4a"
    with av.open(str(sound), "w") as out:
        stream = out.add_stream("aac", rate=8000)
        chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        chunk.sample_rate = 8000
        out.mux(stream.encode(chunk))
        out.mux(stream.encode(None))
    with pytest.raises(VideoError, match="no video stream"):
        upscale_video(sound, tmp_path / "b.mp4", upscaler)
    with pytest.raises(VideoError, match="upscale image"):
        upscale_video(tmp_path, tmp_path / "c.mp4", upscaler)

    src = make_clip(tmp_path / "in.mp4", audio=False, frames=3)
    with pytest.raises(VideoError, match="overwrite the input"):
        upscale_video(src, tmp_path / "." / "in.mp4", upscaler, VideoOptions(overwrite=True))
    with pytest.raises(VideoError, match="cannot hold libx264"):
        upscale_video(src, tmp_path / "d.webm", upscaler, VideoOptions(codec="libx264"))
    with pytest.raises(VideoError, match="unknown video encoder"):
        upscale_video(src, tmp_path / "e.mkv", upscaler, VideoOptions(codec="nonesuch"))
    (tmp_path / "taken.mp4").write_bytes(b"keep me")
    with pytest.raises(VideoError, match="--overwrite"):
        upscale_video(src, tmp_path / "taken.mp4", upscaler)
    assert (tmp_path / "taken.mp4").read_bytes() == b"keep me"
    assert leftovers(tmp_path) == [] and not (tmp_path / "d.webm").exists()


def test_cli_bad_input_is_one_red_line_not_a_traceback(tmp_path, tiny_model_dir):
    text = tmp_path / "notes.mkv"
    text.write_text("hello")
    result = CliRunner().invoke(main, ["video", str(text), "-o", str(tmp_path / "o.mkv"), "--model", str(tiny_model_dir)])
    assert result.exit_code == 1
    assert result.output.strip().startswith("error:") and len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output


# ----------------------------------------------------------------------------- stopping and frames
def test_cancel_stops_and_leaves_nothing_at_the_output(tmp_path):
    src = make_clip(tmp_path / "in.mkv", frames=48)
    cancel = threading.Event()

    def progress(done, total):
        if done >= 4:
            cancel.set()

    with pytest.raises(Cancelled):
        upscale_video(src, tmp_path / "out.mkv", Nearest(delay=0.05), VideoOptions(batch=2), progress, cancel)
    assert not (tmp_path / "out.mkv").exists() and leftovers(tmp_path) == []


@pytest.fixture
def ctrl_c_raises():
    """Ctrl-C as a terminal delivers it. A job started in the background of a non-interactive shell (a CI
    script's `cmd &`) inherits SIGINT ignored, and Python then installs no handler, so `interrupt_main`
    would do nothing."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_stops_within_a_second_or_two(tmp_path, ctrl_c_raises):
    src = make_clip(tmp_path / "in.mkv", frames=48)
    timer = threading.Timer(0.5, _thread.interrupt_main)
    timer.start()
    began = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        upscale_video(src, tmp_path / "out.mkv", Nearest(delay=0.2), VideoOptions(batch=2))
    assert time.monotonic() - began < 2.5
    assert not (tmp_path / "out.mkv").exists() and leftovers(tmp_path) == []


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _stop_a_cli_video_run(tmp_path, tiny_model_dir, signum: int):
    """Start `upscale video` on a long clip, send `signum` once it is writing, and return (process, stderr,
    seconds from the signal to the exit)."""
    src = make_clip(tmp_path / "long.mkv", frames=240, audio=False, size=(96, 72))
    proc = subprocess.Popen([sys.executable, "-m", "upscale", "video", str(src), "-o", str(tmp_path / "out.mkv"),
                             "--model", str(tiny_model_dir), "--tile", "0", "--batch", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)  # a runner that ignores SIGINT would pass that on
    deadline = time.monotonic() + 30
    while not leftovers(tmp_path) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    if proc.poll() is not None:
        pytest.skip("the run finished before it could be stopped")
    proc.send_signal(signum)
    sent = time.monotonic()
    _, err = proc.communicate(timeout=10)
    return proc, err, time.monotonic() - sent


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT")
def test_cli_ctrl_c_exits_130_and_keeps_no_partial_file(tmp_path, tiny_model_dir):
    proc, err, seconds = _stop_a_cli_video_run(tmp_path, tiny_model_dir, signal.SIGINT)
    assert seconds < 4  # stopping takes well under a second; the rest is interpreter exit
    assert proc.returncode == 130 and "Traceback" not in err
    assert not (tmp_path / "out.mkv").exists() and leftovers(tmp_path) == []


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
def test_cli_sigterm_stops_like_ctrl_c_exits_143_and_keeps_no_partial_file(tmp_path, tiny_model_dir):
    proc, err, _ = _stop_a_cli_video_run(tmp_path, tiny_model_dir, signal.SIGTERM)
    assert proc.returncode == 143 and "terminated" in err and "Traceback" not in err
    assert not (tmp_path / "out.mkv").exists() and leftovers(tmp_path) == []


def test_frames_out_writes_numbered_pngs(tmp_path, upscaler):
    src = make_clip(tmp_path / "in.mkv", frames=6)
    report = upscale_frames(src, tmp_path / "frames", upscaler)
    names = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert names == [f"frame_{i:06d}.png" for i in range(1, 7)] + ["timestamps.txt"] and report.frames == 6
    from PIL import Image

    with Image.open(tmp_path / "frames" / "frame_000001.png") as img:
        assert img.size == (W * 2, H * 2)
    with pytest.raises(VideoError, match="--overwrite"):
        upscale_frames(src, tmp_path / "frames", upscaler)


def test_cli_video_command(tmp_path, tiny_model_dir):
    src = make_clip(tmp_path / "in.mp4", frames=6)
    out = tmp_path / "sub" / "out.mkv"
    result = CliRunner().invoke(main, ["video", str(src), "-o", str(out), "--model", str(tiny_model_dir),
                                       "--codec", "libx264", "--crf", "20", "--preset", "ultrafast"])
    assert result.exit_code == 0, result.output
    assert len(video_frames(out)) == 6 and "6 frames" in result.output
    result = CliRunner().invoke(main, ["video", str(src), "--frames-out", str(tmp_path / "f"), "--model",
                                       str(tiny_model_dir), "--end", "0:00.125"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == ["frame_000001.png", "frame_000002.png",
                                                                  "frame_000003.png", "timestamps.txt"]




def test_frames_out_overwrite_leaves_no_stale_frames_of_a_longer_run(tmp_path, upscaler):
    long, short = make_clip(tmp_path / "long.mkv", frames=7), make_clip(tmp_path / "short.mkv", frames=3)
    upscale_frames(long, tmp_path / "frames", upscaler)
    report = upscale_frames(short, tmp_path / "frames", upscaler, VideoOptions(overwrite=True))
    assert report.frames == 3
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == [f"frame_{i:06d}.png" for i in range(1, 4)] + [
        "timestamps.txt"]


def test_path_and_overwrite_errors_come_before_the_model_loads(tmp_path, monkeypatch):
    import upscale.cli as cli

    src = make_clip(tmp_path / "in.mkv", frames=2)
    (tmp_path / "out.mkv").write_bytes(b"old")
    loaded = []
    monkeypatch.setattr(cli, "build_upscaler", lambda *a, **k: loaded.append(1))
    result = CliRunner().invoke(main, ["video", str(src), "-o", str(tmp_path / "out.mkv")])
    assert result.exit_code == 1 and "--overwrite" in result.output and not loaded
    missing = CliRunner().invoke(main, ["video", str(tmp_path / "nope.mkv"), "-o", str(tmp_path / "o.mkv")])
    assert missing.exit_code == 1 and "no such file" in missing.output and not loaded


def test_the_progress_ends_at_the_frames_really_written(tmp_path, upscaler):
    from fractions import Fraction

    src = make_clip(tmp_path / "in.mkv", frames=10, fps=25)
    calls = []
    upscale_video(src, tmp_path / "out.mkv", upscaler, VideoOptions(end=Fraction(1, 4)),
                  lambda done, total: calls.append((done, total)))
    assert calls[-1] == (7, 7)  # the estimate from --end said 6; 7 frames were written, and the bar says so


def test_x265_keeps_quiet(tmp_path, tiny_model_dir):
    import av

    if "libx265" not in av.codecs_available:
        pytest.skip("this PyAV has no libx265")
    src = make_clip(tmp_path / "in.mkv", frames=3, audio=False)
    proc = subprocess.run([sys.executable, "-m", "upscale", "video", str(src), "-o", str(tmp_path / "out.mkv"),
                           "--model", str(tiny_model_dir), "--codec", "libx265", "-q"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "x265 [info]" not in proc.stderr and "encoded" not in proc.stderr


def test_a_truncated_file_is_upscaled_as_far_as_it_goes_with_a_warning(tmp_path, upscaler):
    src = make_clip(tmp_path / "in.mkv", frames=48, audio=False)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(src.read_bytes()[: int(src.stat().st_size * 0.6)])
    report = upscale_video(cut, tmp_path / "out.mkv", upscaler)
    assert 0 < report.frames < 48
    assert any("truncated" in w for w in report.warnings)


def test_an_audio_file_with_a_cover_picture_is_refused_not_made_a_one_frame_video(tmp_path, upscaler):
    import av

    song = tmp_path / "song.mp4"
    with av.open(str(song), "w") as out:
        audio = out.add_stream("aac", rate=44100)
        cover = out.add_stream("mjpeg", rate=1)
        cover.width, cover.height, cover.pix_fmt = 16, 16, "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        picture = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24").reformat(format="yuvj420p")
        for packet in [*cover.encode(picture), *cover.encode(None)]:
            out.mux(packet)
        sound = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        sound.sample_rate = 44100
        for packet in [*audio.encode(sound), *audio.encode(None)]:
            out.mux(packet)
    with pytest.raises(VideoError, match="only a cover picture"):
        upscale_video(song, tmp_path / "out.mp4", upscaler)
    assert not (tmp_path / "out.mp4").exists()


def test_an_rgb_source_written_as_yuv_is_tagged_with_a_yuv_matrix(tmp_path):
    import av

    from conftest import make_tiny_model

    upscaler = Upscaler.from_pretrained(str(make_tiny_model(tmp_path / "m", bicubic=True)), tile=0)  # true colours

    src = tmp_path / "rgb.mkv"
    with av.open(str(src), "w") as out:
        stream = out.add_stream("libx264rgb", rate=24)
        stream.width, stream.height, stream.pix_fmt = W, H, "rgb24"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((H, W, 3), (40 * i, 100, 200), np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with av.open(str(src)) as probe:
        assert int(next(probe.decode(video=0)).colorspace) == 0  # the source says "gbr"
    upscale_video(src, tmp_path / "out.mp4", upscaler)
    with av.open(str(tmp_path / "out.mp4")) as result:
        stream = result.streams.video[0]
        frame = next(result.decode(video=0))
        assert stream.codec_context.pix_fmt.startswith("yuv")
        assert int(frame.colorspace) == 1 and int(frame.color_range) == 1  # BT.709, limited range
        assert abs(int(frame.to_ndarray(format="rgb24")[H, W, 2]) - 200) <= 6  # blue stays blue


# ----------------------------------------------------------------------------- resume, times, durations
KILLED_RUN = """
import os, signal, sys
from upscale.engine import Upscaler
from upscale.video import VideoOptions, upscale_video
from upscale.video_segments import SegmentWriter

written = []
encode = SegmentWriter.frame

def frame_then_die(self, item):
    if len(written) == int(sys.argv[4]):
        os.kill(os.getpid(), signal.SIGKILL)  # no clean-up of any kind, as a power cut
    written.append(1)
    encode(self, item)

SegmentWriter.frame = frame_then_die
upscale_video(sys.argv[1], sys.argv[2], Upscaler.from_pretrained(sys.argv[3], tile=0),
              VideoOptions(codec="ffv1", segment_frames=4, batch=2))
"""


def decoded(path: Path) -> list[tuple[Fraction, Fraction, bytes]]:
    """(time, duration, pixels) of every frame."""
    with av.open(str(path)) as c:
        return [(f.pts * f.time_base, (f.duration or 0) * f.time_base, f.to_ndarray(format="rgb24").tobytes())
                for f in c.decode(c.streams.video[0])]


def test_a_run_killed_with_sigkill_resumes_to_the_same_file(tmp_path, tiny_model_dir):
    src = make_clip(tmp_path / "in.mkv", frames=22, vfr=True, subtitles=True)
    killed = subprocess.run([sys.executable, "-c", KILLED_RUN, str(src), str(tmp_path / "out.mkv"),
                             str(tiny_model_dir), "10"], capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (tmp_path / "out.mkv").exists()
    kept = sorted(p.name for p in (tmp_path / ".out.mkv.partial").iterdir() if not p.name.startswith(".tmp-"))
    assert kept == ["000001.json", "000001.mkv", "000002.json", "000002.mkv", "manifest.json"]

    upscaler = Upscaler.from_pretrained(str(tiny_model_dir), tile=0)
    options = VideoOptions(codec="ffv1", segment_frames=4, batch=2)
    with pytest.raises(VideoError, match="--resume"):  # a rerun without --resume must not lose the work
        upscale_video(src, tmp_path / "out.mkv", upscaler, options)
    report = upscale_video(src, tmp_path / "out.mkv", upscaler, replace(options, resume=True))
    assert report.resumed_after == 8 and report.frames == 22
    upscale_video(src, tmp_path / "whole.mkv", upscaler, options)

    assert decoded(tmp_path / "out.mkv") == decoded(tmp_path / "whole.mkv")  # frames, times, durations
    assert packets(tmp_path / "out.mkv", "audio") == packets(tmp_path / "whole.mkv", "audio")
    assert packets(tmp_path / "out.mkv", "subtitles") == packets(tmp_path / "whole.mkv", "subtitles")
    assert leftovers(tmp_path) == []


def test_resuming_with_other_settings_is_refused_and_overwrite_starts_over(tmp_path):
    src = make_clip(tmp_path / "in.mkv", frames=12)
    options = VideoOptions(segment_frames=4, batch=2)
    with pytest.raises(KeyboardInterrupt):
        upscale_video(src, tmp_path / "out.mkv", Nearest(), options, progress=_interrupt_at(6))
    kept = kept_frames(tmp_path / "out.mkv")
    assert kept >= 4
    with pytest.raises(VideoError, match=r"other settings \(codec_options\)"):
        upscale_video(src, tmp_path / "out.mkv", Nearest(), replace(options, crf=30, resume=True))
    assert kept_frames(tmp_path / "out.mkv") == kept  # the refused resume left the stopped run's work alone
    report = upscale_video(src, tmp_path / "out.mkv", Nearest(), replace(options, overwrite=True))
    assert report.resumed_after == 0 and report.frames == 12 and leftovers(tmp_path) == []


def _interrupt_at(frames: int):
    def progress(done, total):
        if done >= frames:
            raise KeyboardInterrupt
    return progress


def test_a_stopped_run_keeps_only_whole_segments(tmp_path):
    src = make_clip(tmp_path / "in.mkv", frames=12)
    with pytest.raises(KeyboardInterrupt):
        upscale_video(src, tmp_path / "out.mkv", Nearest(delay=0.05), VideoOptions(segment_frames=4, batch=1),
                      progress=_interrupt_at(6))
    folder = tmp_path / ".out.mkv.partial"
    names = sorted(p.name for p in folder.iterdir())
    segments = json.loads((folder / "manifest.json").read_text())["segments"]
    assert 1 <= len(segments) < 3 and all(s["frames"] == 4 for s in segments)
    assert names == sorted([f"{s['name']}.{ext}" for s in segments for ext in ("json", "mkv")] + ["manifest.json"])


def test_resume_without_a_stopped_run_just_runs(tmp_path):
    src = make_clip(tmp_path / "in.mkv", frames=5)
    report = upscale_video(src, tmp_path / "out.mkv", Nearest(), VideoOptions(resume=True))
    assert report.frames == 5 and report.resumed_after == 0


def test_cli_says_how_to_resume_after_ctrl_c(tmp_path, tiny_model_dir, monkeypatch):
    import upscale.video as video
    from upscale.video_segments import SegmentWriter

    src = make_clip(tmp_path / "in.mkv", frames=12)
    monkeypatch.setattr(video, "segment_length", lambda *a: 2)
    written, encode = [], SegmentWriter.frame

    def ctrl_c_at_the_fifth_frame(self, item):
        written.append(1)
        if len(written) == 5:
            raise KeyboardInterrupt
        encode(self, item)

    monkeypatch.setattr(SegmentWriter, "frame", ctrl_c_at_the_fifth_frame)
    args = ["video", str(src), "-o", str(tmp_path / "out.mkv"), "--model", str(tiny_model_dir), "--batch", "1"]
    stopped = CliRunner().invoke(main, args)
    assert stopped.exit_code == 130 and "first 4 frames of" in stopped.output and "--resume" in stopped.output
    resumed = CliRunner().invoke(main, args + ["--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "continued after 4 frames" in resumed.output and len(video_frames(tmp_path / "out.mkv")) == 12


def test_times_count_from_the_start_of_a_transport_stream_that_begins_at_1_4_s(tmp_path):
    src = make_clip(tmp_path / "in.ts", frames=50, fps=25, offset=Fraction(143, 100))
    with av.open(str(src)) as c:
        assert c.start_time > 1_000_000  # the clip really starts late
    cut = upscale_video(src, tmp_path / "cut.mp4", Nearest(), VideoOptions(start=Fraction(1, 2), end=Fraction(3, 2)))
    assert cut.frames == 25 and len(video_frames(tmp_path / "cut.mp4")) == 25
    upscale_video(src, tmp_path / "all.mkv", Nearest())
    with av.open(str(src)) as before, av.open(str(tmp_path / "all.mkv")) as after:
        assert after.start_time == 0  # the output starts at zero...
        assert abs(after.duration - before.duration) < 20_000  # ...and lasts as long as the input
        offset = {s.type: s.start_time * s.time_base for s in before.streams}
        kept = {s.type: s.start_time * s.time_base for s in after.streams}
        assert abs((kept["video"] - kept["audio"]) - (offset["video"] - offset["audio"])) < Fraction(1, 1000)


def test_variable_frame_durations_are_kept(tmp_path):
    """An MP4 without B-frames holds each frame's real duration (20, 40, 60 ms here). Matroska keeps them
    frame by frame; in MP4 (durations in decode order) the stream's end stays where it was."""
    src = make_clip(tmp_path / "in.mp4", frames=9, vfr=True, audio=False, options={"bf": "0"})
    before = decoded(src)
    assert {d for _, d, _ in before[:-1]} == {Fraction(1, 50), Fraction(1, 25), Fraction(3, 50)}
    upscale_video(src, tmp_path / "out.mkv", Nearest())
    after = decoded(tmp_path / "out.mkv")
    assert [t for t, _, _ in after] == [t for t, _, _ in before]
    assert all(abs(a[1] - b[1]) <= Fraction(1, 1000) for a, b in zip(after, before))  # Matroska keeps ms
    upscale_video(src, tmp_path / "out.mp4", Nearest())
    with av.open(str(src)) as a, av.open(str(tmp_path / "out.mp4")) as b:
        assert b.duration == a.duration


def test_a_corrupt_packet_costs_only_its_own_frame(tmp_path):
    src = make_clip(tmp_path / "in.mkv", frames=20, audio=False, size=(64, 48))
    with av.open(str(src)) as c:
        payloads = [bytes(p) for p in c.demux(video=0) if p.size]
    data = bytearray(src.read_bytes())
    at = data.find(payloads[10])
    for k in range(8, len(payloads[10]) - 4):
        data[at + k] ^= 0x55
    bad = tmp_path / "bad.mkv"
    bad.write_bytes(bytes(data))
    report = upscale_video(bad, tmp_path / "out.mkv", Nearest())
    good = times(video_frames(src))
    assert report.frames == 19 and report.corrupt_packets == 1
    kept = times(video_frames(tmp_path / "out.mkv"))
    assert len(kept) == 19 and set(kept) < set(good)  # the others keep their timestamps


def streams_of(path: Path) -> list[tuple[str, str]]:
    with av.open(str(path)) as c:  # "srt" is FFmpeg's other name for the SubRip decoder
        return [(s.type, {"srt": "subrip"}.get(s.codec_context.name, s.codec_context.name)) for s in c.streams]


def test_webm_output_of_an_aac_source_gets_opus_sound_not_silence(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=24)
    report = upscale_video(src, tmp_path / "out.webm", Nearest())
    assert ("audio", "opus") in streams_of(tmp_path / "out.webm")
    assert report.converted == ["audio #1 (aac) converted to libopus (the .webm container cannot hold aac)"]
    with av.open(str(tmp_path / "out.webm")) as c:
        sound = np.concatenate([f.to_ndarray().ravel() for f in c.decode(audio=0)])
    assert len(sound) > 40_000 * 0.9 and np.abs(sound).max() > 0.2  # about a second of the 0.3 sine, at 48 kHz


def test_mp4_output_converts_subrip_to_mov_text_with_the_same_words_and_times(tmp_path):
    src = make_clip(tmp_path / "in.mkv", frames=24, subtitles=True)
    upscale_video(src, tmp_path / "out.mp4", Nearest())
    assert ("subtitle", "mov_text") in streams_of(tmp_path / "out.mp4")
    texts = [(t, payload[2:]) for t, payload in packets(tmp_path / "out.mp4", "subtitles") if len(payload) > 2]
    assert texts == [(Fraction(0), b"hello"), (Fraction(2, 5), b"world")]


@pytest.mark.parametrize("audio, subtitles, expected", [
    ("none", "none", [("video", "h264")]),
    ("reencode", "convert", [("video", "h264"), ("audio", "aac"), ("subtitle", "subrip")]),
])
def test_audio_and_subtitle_policies(tmp_path, audio, subtitles, expected):
    src = make_clip(tmp_path / "in.mkv", frames=12, subtitles=True)
    upscale_video(src, tmp_path / "out.mkv", Nearest(), VideoOptions(audio=audio, subtitles=subtitles))
    assert streams_of(tmp_path / "out.mkv") == expected


def test_compat_writes_8_bit_4_2_0_and_the_cli_names_the_profile(tmp_path, tiny_model_dir):
    src = make_clip(tmp_path / "in.mkv", frames=4, audio=False, pix_fmt="yuv422p10le")
    deep = upscale_video(src, tmp_path / "deep.mp4", Nearest())
    assert deep.video_format == "H.264 High 4:2:2, yuv422p10le"
    plain = upscale_video(src, tmp_path / "plain.mp4", Nearest(), VideoOptions(compat=True))
    assert plain.video_format == "H.264 High, yuv420p"
    with pytest.raises(VideoError, match="--compat"):
        upscale_video(src, tmp_path / "x.mp4", Nearest(), VideoOptions(compat=True, pix_fmt="yuv444p"))
    result = CliRunner().invoke(main, ["video", str(src), "-o", str(tmp_path / "cli.mp4"), "--model",
                                       str(tiny_model_dir)])
    assert result.exit_code == 0 and "video: H.264 High 4:2:2, yuv422p10le (--compat" in result.output


def test_several_videos_and_folders_mirror_names_skip_done_ones_and_list_failures(tmp_path, tiny_model_dir):
    clips = tmp_path / "clips"
    (clips / "sub").mkdir(parents=True)
    make_clip(tmp_path / "a.mkv", frames=3, audio=False)
    make_clip(tmp_path / "b.ts", frames=25, fps=25)
    make_clip(clips / "sub" / "c.mp4", frames=3, audio=False)
    (clips / "broken.mkv").write_bytes(b"not a video at all")
    (clips / "notes.txt").write_text("not a video either, and not an input")
    out = tmp_path / "out"
    args = ["video", str(tmp_path / "a.mkv"), str(tmp_path / "b.ts"), str(clips), "-o", str(out),
            "--model", str(tiny_model_dir), "-q"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 1, first.output
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["a.mkv", "b.mkv", "sub/c.mp4"]  # a TS becomes Matroska; the tree is mirrored
    assert "upscaled 3 video(s)" in first.output and "1 failed" in first.output and "broken.mkv" in first.output
    assert len(video_frames(out / "sub" / "c.mp4")) == 3
    (clips / "broken.mkv").unlink()
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "upscaled 0 video(s); 3 skipped" in again.output


def test_frames_out_writes_a_timestamps_file_for_variable_rate_timing(tmp_path):
    src = make_clip(tmp_path / "in.mkv", frames=5, vfr=True, audio=False)
    upscale_frames(src, tmp_path / "frames", Nearest())
    lines = (tmp_path / "frames" / "timestamps.txt").read_text().splitlines()
    assert lines == ["# timestamp format v2", "0", "20", "60", "120", "140"]


def test_a_stopped_frames_out_run_resumes_after_its_last_frame(tmp_path, monkeypatch):
    from upscale.video_output import FramesSink

    src = make_clip(tmp_path / "in.mkv", frames=9, vfr=True, audio=False)
    upscale_frames(src, tmp_path / "whole", Nearest())
    written, write = [], FramesSink.frame

    def stop_at_the_fifth(self, item):
        if len(written) == 4:
            raise KeyboardInterrupt
        written.append(1)
        write(self, item)

    monkeypatch.setattr(FramesSink, "frame", stop_at_the_fifth)
    with pytest.raises(KeyboardInterrupt):
        upscale_frames(src, tmp_path / "part", Nearest())
    monkeypatch.setattr(FramesSink, "frame", write)
    with pytest.raises(VideoError, match="--resume"):
        upscale_frames(src, tmp_path / "part", Nearest())
    report = upscale_frames(src, tmp_path / "part", Nearest(), VideoOptions(resume=True))
    assert report.resumed_after == 4 and report.frames == 9
    names = sorted(p.name for p in (tmp_path / "part").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "whole").iterdir())  # nothing hidden is left
    for name in names:
        assert (tmp_path / "part" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()


# ----------------------------------------------------------------------------- --outscale
def test_outscale_resizes_each_frame_as_an_image_is_resized(tmp_path):
    from PIL import Image

    from upscale.engine import resize_to

    src = make_clip(tmp_path / "in.mkv", frames=4, size=(34, 18), audio=False)
    upscale_frames(src, tmp_path / "x2", Nearest())
    report = upscale_frames(src, tmp_path / "x225", Nearest(), VideoOptions(outscale=2.25))
    assert report.frames == 4
    for i in range(1, 5):
        plain = np.asarray(Image.open(tmp_path / "x2" / f"frame_{i:06d}.png"))
        resized = np.asarray(Image.open(tmp_path / "x225" / f"frame_{i:06d}.png"))
        assert resized.shape == (40, 76, 3)  # 40.5 x 76.5, as round() makes an image's sides
        assert np.array_equal(resized, resize_to(plain, 40, 76))  # the model, then the image path's resize
    upscale_frames(src, tmp_path / "x15", Nearest(), VideoOptions(outscale=1.5))
    assert Image.open(tmp_path / "x15" / "frame_000001.png").size == (51, 27)  # PNG frames: the exact size


@pytest.mark.parametrize("options, size", [
    ({}, (52, 28)),  # libx264 in 4:2:0 needs even sides: 51 x 27 rounds to the nearest even numbers
    ({"pix_fmt": "yuv422p"}, (52, 27)),  # 4:2:2 halves only the width of its chroma
    ({"pix_fmt": "yuv444p"}, (51, 27)),
    ({"codec": "ffv1", "pix_fmt": "yuv444p"}, (51, 27)),
])
def test_outscale_rounds_video_sides_only_as_far_as_the_pixel_format_needs(tmp_path, options, size):
    src = make_clip(tmp_path / "in.mkv", frames=2, size=(34, 18), audio=False)
    report = upscale_video(src, tmp_path / "out.mkv", Nearest(), VideoOptions(outscale=1.5, **options))
    assert {(f.width, f.height) for f in video_frames(tmp_path / "out.mkv")} == {size}
    assert report.frames == 2


def test_outscale_to_the_models_own_factor_or_to_nothing(tmp_path):
    src = make_clip(tmp_path / "in.mkv", frames=2, size=(34, 18), audio=False)
    upscale_video(src, tmp_path / "same.mp4", Nearest(), VideoOptions(outscale=2.0))
    assert {(f.width, f.height) for f in video_frames(tmp_path / "same.mp4")} == {(68, 36)}
    with pytest.raises(VideoError, match="--outscale 0.01 makes 34x18 frames empty"):
        upscale_video(src, tmp_path / "empty.mp4", Nearest(), VideoOptions(outscale=0.01))
    assert not (tmp_path / "empty.mp4").exists() and leftovers(tmp_path) == []


def test_a_stopped_run_resumes_only_at_its_own_outscale(tmp_path):
    src = make_clip(tmp_path / "in.mkv", frames=12, audio=False)
    options = VideoOptions(segment_frames=4, batch=2, outscale=1.5)
    with pytest.raises(KeyboardInterrupt):
        upscale_video(src, tmp_path / "out.mkv", Nearest(), options, progress=_interrupt_at(6))
    with pytest.raises(VideoError, match=r"other settings \(outscale\)"):
        upscale_video(src, tmp_path / "out.mkv", Nearest(), replace(options, outscale=1.75, resume=True))
    report = upscale_video(src, tmp_path / "out.mkv", Nearest(), replace(options, resume=True))
    assert report.resumed_after >= 4 and report.frames == 12
    assert {(f.width, f.height) for f in video_frames(tmp_path / "out.mkv")} == {(W * 3 // 2, H * 3 // 2)}


def test_cli_outscale_picks_the_packaged_model_for_the_factor_and_names_outputs_by_it(tmp_path, tiny_model_dir):
    src = make_clip(tmp_path / "in.mp4", frames=3, audio=False)
    resized = CliRunner().invoke(main, ["video", str(src), "--model", str(tiny_model_dir), "--outscale", "1.5", "-q"])
    assert resized.exit_code == 0, resized.output
    assert "x1.5 (x2 and a resize)" in resized.output and len(video_frames(tmp_path / "in_x1.5.mp4")) == 3
    own = CliRunner().invoke(main, ["video", str(src), "--outscale", "3", "-o", str(tmp_path / "x3.mkv"), "-q"])
    assert own.exit_code == 0, own.output
    assert "frames x3 on" in own.output and video_frames(tmp_path / "x3.mkv")[0].width == W * 3  # trinas-x3


def test_cli_tta_reaches_the_engine(tmp_path, tiny_model_dir):
    from PIL import Image

    src = make_clip(tmp_path / "in.mkv", frames=2, audio=False)
    upscale_frames(src, tmp_path / "api", Upscaler.from_pretrained(str(tiny_model_dir), tile=0, tta=True))
    for flag in ("--tta", None):
        args = ["video", str(src), "--frames-out", str(tmp_path / str(flag)), "--model", str(tiny_model_dir),
                "--tile", "0", "-q"]
        assert CliRunner().invoke(main, args + ([flag] if flag else [])).exit_code == 0
    frame = "frame_000001.png"
    api, tta, plain = (np.asarray(Image.open(tmp_path / name / frame)) for name in ("api", "--tta", "None"))
    assert np.array_equal(tta, api) and not np.array_equal(plain, api)
