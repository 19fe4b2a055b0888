"""Videos through the engine: decode, upscale in batches, encode; every other stream copied untouched.

Three threads joined by bounded queues (decoder -> engine -> encoder) keep memory constant whatever the
length and let decoding and encoding overlap inference. Each output frame carries its input frame's
timestamp and duration in the input's time base, so variable frame rates and audio sync survive. The
encoded video is kept in closed segments beside OUT as it is made (`video_segments`), so a stopped run
continues with `resume`; OUT itself appears only when complete, assembled from the segments and the input's
other streams (`video_output.assemble`).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import os
import queue
import re
import threading
import time
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import av
import numpy as np
import torch

from trinas.files import read_bounded

from .engine import resize_to
from .video_output import FramesSink, assemble, check_container, frames_done, plan_encoding
from .video_read import ReadStats, open_input, plan_reading, read_frames
from .video_segments import (Manifest, SegmentWriter, check_same_settings, clear, partial_folder,
                             remove_unfinished, segment_length, segment_paths, write_atomically)
from .policies import AUDIO_CHOICES, SUBTITLE_CHOICES
from .video_types import Cancelled, Frame, VideoError, VideoOptions, VideoReport

__all__ = ["Cancelled", "VideoError", "VideoOptions", "VideoReport", "kept_frames", "parse_time", "upscale_frames",
           "upscale_video"]

ProgressCallback = Callable[[int, "int | None"], None]  # (frames done, total or estimate)
MAX_BATCH_BYTES = 256 << 20  # the engine's float32 output for one batch stays under this
FRAMES_MANIFEST = ".upscale-frames.json"  # the settings of a --frames-out run, until it is complete
MAX_FRAMES_MANIFEST = 1 << 16
_END = object()


def output_size(width: int, height: int, scale: int, outscale: float | None,
                steps: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    """(width, height) of the output frames: the model's, or --outscale's with each side rounded to a multiple
    of its step, the chroma subsampling of the pixel format written (2, 2 for the 4:2:0 video most encoders
    write: a frame of 640x480 at 2.25 is 1440x1080; 1, 1 for PNG frames and 4:4:4, as `upscale image` rounds)."""
    if outscale is None or math.isclose(outscale, scale):
        return width * scale, height * scale
    size = (steps[0] * round(width * outscale / steps[0]), steps[1] * round(height * outscale / steps[1]))
    if min(size) < 1:
        raise VideoError(f"--outscale {outscale:g} makes {width}x{height} frames empty; use a larger factor")
    return size


class _Stopped(Exception):
    """Raised inside a worker when another worker failed or the run was cancelled."""


class _Counter:
    done: int = 0


# ----------------------------------------------------------------------------- public API
def upscale_video(src: str | os.PathLike, dst: str | os.PathLike, upscaler, options: VideoOptions | None = None,
                  progress: ProgressCallback | None = None, cancel: threading.Event | None = None) -> VideoReport:
    """Upscale the video stream of `src` into the video file `dst`, copying audio, subtitles, metadata and
    chapters where the container allows. `dst` appears only when complete; set `cancel` to stop cleanly.
    A stopped run keeps its finished segments; `options.resume` continues it."""
    options = options or VideoOptions()
    src, dst = Path(src), Path(dst)
    _check_output(src, dst, options.overwrite)
    folder = partial_folder(dst)
    kept = _stopped_run(folder, dst, options)
    report = VideoReport(output=dst)
    state: dict = {}

    def sink_for(source, plan, first, batch, size_for):
        encoding = plan_encoding(plan, first, size_for, options, report)
        settings = _settings(src, upscaler, options, encoding, batch)
        manifest = _manifest_for(folder, kept, settings)
        check_container(folder / f".tmp-check{dst.suffix}", source, plan, first, encoding, options, report)
        state.update(manifest=manifest, first=first)
        return SegmentWriter(folder, manifest, encoding), manifest.frames_done, (encoding.width, encoding.height)

    try:
        stats = _process(src, upscaler, options, report, sink_for, progress, cancel)
        if not state["manifest"].segments:
            raise VideoError(f"{src} has no video frames to write")
        with av.open(str(src)) as source:  # a second pass for the copied streams, interleaved by time
            output = folder / f".tmp-output{dst.suffix}"
            assemble(output, segment_paths(folder, state["manifest"]), source, plan_reading(source, options),
                     state["first"], options, report, stats)
        os.replace(output, dst)
    except BaseException:  # a stop or a failure: finished segments stay for --resume, nothing else does
        if _nothing_kept(folder):
            clear(folder)
        raise
    clear(folder)
    _warn_about_reading(report, stats)
    return report


def kept_frames(dst: str | os.PathLike) -> int:
    """How many frames a stopped run of `dst` keeps for --resume (0 when none or unreadable)."""
    try:
        manifest = Manifest.load(partial_folder(Path(dst)))
    except VideoError:
        return 0
    return manifest.frames_done if manifest else 0


def upscale_frames(src: str | os.PathLike, folder: str | os.PathLike, upscaler, options: VideoOptions | None = None,
                   progress: ProgressCallback | None = None, cancel: threading.Event | None = None) -> VideoReport:
    """Upscale the video stream of `src` into numbered PNG frames (frame_000001.png, ...) in `folder`, with a
    timestamps file. Each file is written atomically; `options.resume` continues a stopped run after its last
    finished frame; audio and subtitles are not kept."""
    options = options or VideoOptions()
    src, folder = Path(src), Path(folder)
    if folder.exists() and not folder.is_dir():
        raise VideoError(f"{folder} exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    settings = _identity(src, upscaler, options)
    manifest = folder / FRAMES_MANIFEST
    done = _frames_to_resume(folder, manifest, settings) if options.resume else 0
    if not done and not options.overwrite and any(folder.glob("frame_*.png")):
        raise VideoError(_frames_exist(folder))
    write_atomically(manifest, json.dumps(settings).encode())
    report = VideoReport(output=folder)

    def sink_for(source, plan, first, batch, size_for):
        return FramesSink(folder, plan.video.time_base, done), done, size_for((1, 1))  # PNG: any size

    stats = _process(src, upscaler, options, report, sink_for, progress, cancel)
    _remove_stale_frames(folder, report.frames)
    manifest.unlink(missing_ok=True)
    _warn_about_reading(report, stats)
    return report


def _frames_to_resume(folder: Path, manifest: Path, settings: dict) -> int:
    """Frames a stopped --frames-out run into `folder` finished, if it had these settings."""
    if not manifest.is_file():
        return 0
    try:
        kept = json.loads(read_bounded(manifest, MAX_FRAMES_MANIFEST))
    except ValueError:  # not JSON, or over the bound (FileTooLarge): nothing past it was read
        raise VideoError(f"{manifest} is damaged; rerun with --overwrite to start over") from None
    check_same_settings(folder, kept, settings)
    return frames_done(folder)


def _remove_stale_frames(folder: Path, frames: int) -> None:
    """After an --overwrite run: numbered frames beyond the ones just written belong to an older, longer run."""
    for path in folder.glob("frame_*.png"):
        match = re.fullmatch(r"frame_(\d+)\.png", path.name)
        if match and int(match.group(1)) > frames:
            path.unlink(missing_ok=True)


def parse_time(text: str | float | int | None) -> Fraction | None:
    """Seconds (`90`, `12.5`) or clock time (`1:30`, `00:01:30.25`) -> exact seconds."""
    if text is None or text == "":
        return None
    if isinstance(text, (int, float)):
        value = Fraction(text)
    else:
        parts = str(text).strip().split(":")
        if len(parts) > 3 or not all(re.fullmatch(r"\d+(\.\d*)?", p) for p in parts):
            raise VideoError(f"cannot read the time {text!r}; use seconds (12.5) or [HH:]MM:SS[.ms]")
        value = Fraction(0)
        for part in parts:
            value = value * 60 + Fraction(part)
    if value < 0:
        raise VideoError(f"time {text!r} is negative")
    return value


# ----------------------------------------------------------------------------- the run
def _process(src: Path, upscaler, options: VideoOptions, report: VideoReport, sink_for, progress,
             cancel) -> ReadStats:
    """Open, plan, peek the first frame (it decides size, colour and rotation), then stream the frames, the
    first `skip` of them (already in finished segments) decoded but not upscaled again."""
    if options.audio not in AUDIO_CHOICES or options.subtitles not in SUBTITLE_CHOICES:
        raise VideoError(f"audio must be one of {', '.join(AUDIO_CHOICES)} and subtitles one of "
                         f"{', '.join(SUBTITLE_CHOICES)}; got {options.audio!r} and {options.subtitles!r}")
    if options.start is not None and options.end is not None and options.end <= options.start:
        raise VideoError(f"--end ({float(options.end):g}s) must come after --start ({float(options.start):g}s)")
    source = open_input(src)
    stats = ReadStats()
    counter = _Counter()
    threads: list[threading.Thread] = []
    sink = None
    try:
        plan = plan_reading(source, options)
        report.total, report.total_exact = plan.total, plan.total_exact
        frames = read_frames(source, plan, stats)
        first = next(frames, None)
        if first is None:
            span = "" if plan.start is None and plan.end is None else " between --start and --end"
            raise VideoError(f"{src} has no video frames{span}")
        batch = _batch_size(options.batch, first.width, first.height, upscaler.scale)
        size_for = functools.partial(output_size, first.width, first.height, upscaler.scale, options.outscale)
        sink, skip, size = sink_for(source, plan, first, batch, size_for)  # the sink knows how sides must round
        report.resumed_after = counter.done = skip
        deep = max(c.bits for c in first.format.components) > 8
        to_frame = _converter(first.width, first.height, "rgb48le" if deep else "rgb24")
        _pipeline(itertools.islice(itertools.chain([first], frames), skip, None), to_frame, upscaler, sink,
                  batch, size, cancel or threading.Event(), progress, plan.total, counter, report, threads)
    finally:
        busy = {t.name for t in threads if t.is_alive()}  # only after Ctrl-C, and only for a moment
        if sink is not None and "video-encoder" not in busy:
            sink.close()
        if "video-decoder" not in busy:
            source.close()
    report.frames = counter.done
    expected = report.total
    if expected and counter.done < (expected if report.total_exact else expected * 0.95):
        report.warnings.append(f"the video ended after {counter.done} of the {expected} frames its header "
                               f"promises: a truncated file? The output holds what could be read")
    return stats


def _warn_about_reading(report: VideoReport, stats: ReadStats) -> None:
    report.corrupt_packets = stats.corrupt
    if stats.corrupt:
        report.warnings.append(f"skipped {stats.corrupt} corrupt packet(s) that would not decode; "
                               f"the other frames keep their timestamps")
    if stats.untimed:
        report.warnings.append(f"dropped {stats.untimed} copied packet(s) without timestamps")
    if stats.nudged:
        report.warnings.append(f"{stats.nudged} frame(s) repeated an earlier timestamp and were moved one tick later")


# ----------------------------------------------------------------------------- resuming
def _stopped_run(folder: Path, dst: Path, options: VideoOptions) -> Manifest | None:
    """What a stopped run left for `dst`: kept for --resume, discarded with --overwrite, else a refusal."""
    kept = Manifest.load(folder) if not options.overwrite or options.resume else None
    if options.overwrite and not options.resume:
        clear(folder)
        return None
    if kept is not None and not options.resume:
        raise VideoError(f"a stopped run of {dst.name} is kept in {folder} ({kept.frames_done} frames done); "
                         f"add --resume to continue it, or --overwrite to start over")
    return kept


def _nothing_kept(folder: Path) -> bool:
    """Whether `folder` holds no finished segment (of this run or of a stopped one a refused resume found)."""
    try:
        manifest = Manifest.load(folder)
    except VideoError:
        return False  # damaged: what it holds is the user's to judge, not ours to delete
    return manifest is None or not manifest.segments


def _manifest_for(folder: Path, kept: Manifest | None, settings: dict) -> Manifest:
    """The manifest this run writes to: the stopped run's when resuming with the same settings."""
    if kept is not None:
        check_same_settings(folder, kept.settings, settings)
        remove_unfinished(folder, kept)
        return kept
    clear(folder)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(settings, settings["segment_frames"])
    manifest.save(folder)
    return manifest


def _identity(src: Path, upscaler, options: VideoOptions) -> dict:
    """The input, the model and the span: what every resume must match."""
    info = src.stat()
    identity = {"input": [os.path.realpath(src), info.st_size, info.st_mtime_ns],
                "model": _model_identity(upscaler), "scale": upscaler.scale,
                "start": str(options.start), "end": str(options.end)}
    if options.outscale is not None:  # only when given, so a stopped run of an earlier version still resumes
        identity["outscale"] = options.outscale
    return identity


def _settings(src: Path, upscaler, options: VideoOptions, encoding, batch: int) -> dict:
    """Everything that shapes the output's frames: a resume must match it exactly."""
    return {**_identity(src, upscaler, options),
            "codec": encoding.codec, "codec_options": encoding.codec_options, "pix_fmt": encoding.pix_fmt,
            "batch": batch,
            "audio": options.audio, "subtitles": options.subtitles, "compat": options.compat,
            "segment_frames": options.segment_frames or segment_length(encoding.rate, encoding.width,
                                                                       encoding.height, batch)}


def _model_identity(upscaler) -> str:
    """A digest of the weights, precision and self-ensemble of an engine (any object with `run_tensor` is
    an engine to this module; one without a model is known by its type)."""
    model = getattr(upscaler, "model", None)
    if model is None:
        return type(upscaler).__name__
    digest = hashlib.sha256(f"{getattr(upscaler, 'dtype', '')}|tta={getattr(upscaler, 'tta', False)}".encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _pipeline(frames: Iterator[av.VideoFrame], to_frame, upscaler, sink, batch: int, size: tuple[int, int],
              cancel: threading.Event, progress, total: int | None, stats: _Counter, report: VideoReport,
              threads: list[threading.Thread]) -> None:
    """Decoder, engine and encoder threads with bounded queues; this thread reports progress and reacts
    to cancel and Ctrl-C. `threads` receives the workers (all finished unless interrupted)."""
    stop = threading.Event()
    failures: list[BaseException] = []
    decoded: queue.Queue = queue.Queue(maxsize=2 * batch)
    upscaled: queue.Queue = queue.Queue(maxsize=2 * batch)

    def decode() -> None:
        for frame in frames:
            _put(decoded, to_frame(frame), stop)
        _put(decoded, _END, stop)

    def infer() -> None:
        pending: list[Frame] = []
        while True:
            item = _get(decoded, stop)
            if item is not _END:
                pending.append(item)
            if item is _END or len(pending) >= batch:
                for frame, pixels in zip(pending, _upscale_batch(upscaler, [f.pixels for f in pending], stop, size)):
                    _put(upscaled, replace(frame, pixels=pixels), stop)
                pending = []
            if item is _END:
                _put(upscaled, _END, stop)
                return

    def encode() -> None:
        try:
            while True:
                item = _get(upscaled, stop)
                if item is _END:
                    sink.finish()
                    return
                sink.frame(item)
                stats.done += 1
        finally:
            sink.close()

    def guarded(fn):
        def run() -> None:
            try:
                fn()
            except _Stopped:
                pass
            except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
                failures.append(exc)
                stop.set()
        return run

    threads.extend(threading.Thread(target=guarded(fn), name=f"video-{name}", daemon=True)
                   for name, fn in (("decoder", decode), ("engine", infer), ("encoder", encode)))
    started = time.perf_counter()
    shown = -1
    try:
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            if cancel.is_set():
                stop.set()
            threads[-1].join(0.1)
            if progress and stats.done != shown:
                shown = stats.done
                progress(shown, total)
    except BaseException:  # Ctrl-C (or a failing progress callback): stop every worker, then re-raise
        stop.set()
        decoder, engine, encoder = threads
        _join([decoder, encoder], seconds=2.0)
        # The engine stops at its next tile; exiting while torch still computes would abort the process,
        # so wait for that tile (a second Ctrl-C skips the wait).
        while engine.ident is not None and engine.is_alive():
            engine.join(0.1)
        raise
    report.seconds = time.perf_counter() - started
    if failures:
        raise failures[0]
    if cancel.is_set():
        raise Cancelled("stopped before the end")
    if progress:  # the count is now known: a container's estimate (51 for 50 frames) must not leave it short
        progress(stats.done, stats.done)


def _put(q: queue.Queue, item, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            pass
    raise _Stopped


def _get(q: queue.Queue, stop: threading.Event):
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                raise _Stopped from None


def _join(threads: list[threading.Thread], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    for t in threads:
        if t.ident is not None:  # started
            t.join(max(0.0, deadline - time.monotonic()))


# ----------------------------------------------------------------------------- engine
def _batch_size(wanted: int, width: int, height: int, scale: int) -> int:
    """As many frames per engine call as asked, but never a float32 output batch over MAX_BATCH_BYTES."""
    per_frame = 3 * 4 * width * height * scale * scale
    return max(1, min(int(wanted), MAX_BATCH_BYTES // per_frame))


def _upscale_batch(upscaler, frames: list[np.ndarray], stop: threading.Event,
                   size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """N HxWx3 uint8/uint16 frames -> N scaled frames of the same type, in one engine call, resized to `size`
    (width, height) where it differs from the model's, as `upscale image --outscale` resizes."""
    if not frames:
        return []
    dtype = frames[0].dtype
    peak = float(np.iinfo(dtype).max)
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div_(peak)
    if upscaler.channels == 1:
        x = x.mean(dim=1, keepdim=True)

    def check(done: int, total: int) -> None:
        if stop.is_set():
            raise _Stopped

    y = upscaler.run_tensor(x, check)
    if y.shape[1] == 1:
        y = y.expand(-1, 3, -1, -1)
    y = y.mul(peak).round_().clamp_(0, peak).permute(0, 2, 3, 1)
    out = y.to(torch.uint8).numpy() if dtype == np.uint8 else y.to(torch.int32).numpy().astype(dtype)
    if size is not None and size != (out.shape[2], out.shape[1]):
        return [resize_to(frame, size[1], size[0]) for frame in out]
    return [np.ascontiguousarray(frame) for frame in out]


# ----------------------------------------------------------------------------- decoding
def _converter(width: int, height: int, rgb: str):
    """av.VideoFrame -> Frame of RGB pixels, read with the frame's own colour matrix and range."""
    def to_frame(frame: av.VideoFrame) -> Frame:
        size = {} if (frame.width, frame.height) == (width, height) else {"width": width, "height": height}
        pixels = frame.to_ndarray(format=rgb, src_color_range=frame.color_range or None, **size)
        return Frame(pixels, frame.pts, frame.duration or 0)
    return to_frame


# ----------------------------------------------------------------------------- small helpers
def check_targets(src: str | os.PathLike, output: str | os.PathLike | None, frames_out: str | os.PathLike | None,
                  overwrite: bool) -> None:
    """Everything about the input and output paths that can be refused before a model is loaded."""
    src = Path(src)
    if not src.is_file():
        raise VideoError(f"{src}: no such file" if not src.exists() else f"{src} is not a file")
    if output is not None:
        _check_output(src, Path(output), overwrite)
    if frames_out is not None:
        folder = Path(frames_out)
        if folder.exists() and not folder.is_dir():
            raise VideoError(f"{folder} exists and is not a folder")
        if not overwrite and folder.is_dir() and any(folder.glob("frame_*.png")):
            raise VideoError(_frames_exist(folder))


def _frames_exist(folder: Path) -> str:
    if (folder / FRAMES_MANIFEST).is_file():
        return (f"{folder} holds the frames of a stopped run; add --resume to continue it, or --overwrite to "
                f"start over")
    return f"{folder} already holds frame_*.png files; pass --overwrite or choose an empty folder"


def _check_output(src: Path, dst: Path, overwrite: bool) -> None:
    same = os.path.realpath(src) == os.path.realpath(dst) or (src.exists() and dst.exists() and src.samefile(dst))
    if same:
        raise VideoError("the output would overwrite the input; choose another output name")
    if dst.is_dir():
        raise VideoError(f"{dst} is a folder; give a file name like {dst / (src.stem + '_up.mp4')} "
                         f"or use --frames-out {dst}")
    if dst.exists() and not overwrite:
        raise VideoError(f"{dst} exists; pass --overwrite to replace it")
    if not dst.suffix:
        raise VideoError(f"{dst} has no extension to tell the container; use .mp4, .mkv, .mov or .webm")
