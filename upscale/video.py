"""Videos through the engine: decode, upscale in batches, encode; every other stream copied untouched.

Three threads joined by bounded queues (decoder -> engine -> encoder) keep memory constant whatever the
length and let decoding and encoding overlap inference. Each output frame carries its input frame's
timestamp in the input's time base, so variable frame rates, durations and audio sync survive. The video
is written under a temporary name beside OUT (same extension, so the muxer picks the same container) and
renamed only when complete: an interrupted run never leaves a file at OUT that looks finished.
"""

from __future__ import annotations

import itertools
import os
import queue
import re
import threading
import time
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Iterator

import av
import numpy as np
import torch

from .video_output import FramesSink, VideoSink
from .video_types import Cancelled, Frame, Plan, VideoError, VideoOptions, VideoReport, reason

__all__ = ["Cancelled", "VideoError", "VideoOptions", "VideoReport", "parse_time", "upscale_frames", "upscale_video"]

ProgressCallback = Callable[[int, "int | None"], None]  # (frames done, total or estimate)
MAX_BATCH_BYTES = 256 << 20  # the engine's float32 output for one batch stays under this
_END = object()


class _Stopped(Exception):
    """Raised inside a worker when another worker failed or the run was cancelled."""


@dataclass
class _Stats:
    done: int = 0
    corrupt: int = 0
    untimed: int = 0
    nudged: int = 0


# ----------------------------------------------------------------------------- public API
def upscale_video(src: str | os.PathLike, dst: str | os.PathLike, upscaler, options: VideoOptions | None = None,
                  progress: ProgressCallback | None = None, cancel: threading.Event | None = None) -> VideoReport:
    """Upscale the video stream of `src` into the video file `dst`, copying audio, subtitles, metadata and
    chapters where the container allows. `dst` appears only when complete; set `cancel` to stop cleanly."""
    options = options or VideoOptions()
    src, dst = Path(src), Path(dst)
    _check_output(src, dst, options.overwrite)
    partial = dst.parent / f".{dst.stem}.partial{dst.suffix}"
    dst.parent.mkdir(parents=True, exist_ok=True)
    report = VideoReport(output=dst)

    def sink_for(source, plan, first):
        return VideoSink(partial, source, plan, first, upscaler.scale, options, report)

    try:
        _process(src, upscaler, options, report, sink_for, progress, cancel)
        os.replace(partial, dst)
    except BaseException:
        _remove(partial)
        raise
    return report


def upscale_frames(src: str | os.PathLike, folder: str | os.PathLike, upscaler, options: VideoOptions | None = None,
                   progress: ProgressCallback | None = None, cancel: threading.Event | None = None) -> VideoReport:
    """Upscale the video stream of `src` into numbered PNG frames (frame_000001.png, ...) in `folder`.
    Each file is written atomically; audio, subtitles and timing are not kept."""
    options = options or VideoOptions()
    src, folder = Path(src), Path(folder)
    if folder.exists() and not folder.is_dir():
        raise VideoError(f"{folder} exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    if not options.overwrite and any(folder.glob("frame_*.png")):
        raise VideoError(f"{folder} already holds frame_*.png files; pass --overwrite or choose an empty folder")
    report = VideoReport(output=folder)
    _process(src, upscaler, options, report, lambda source, plan, first: FramesSink(folder), progress, cancel)
    _remove_stale_frames(folder, report.frames)
    return report


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
def _process(src: Path, upscaler, options: VideoOptions, report: VideoReport, sink_for, progress, cancel) -> None:
    """Open, plan, peek the first frame (it decides size, colour and rotation), then stream the rest."""
    if options.start is not None and options.end is not None and options.end <= options.start:
        raise VideoError(f"--end ({float(options.end):g}s) must come after --start ({float(options.start):g}s)")
    source = _open_input(src)
    stats = _Stats()
    threads: list[threading.Thread] = []
    sink = None
    try:
        plan = _plan(source, options)
        report.total, report.total_exact = plan.total, plan.total_exact
        items = _read(source, plan, stats)
        head = []
        for item in items:
            head.append(item)
            if isinstance(item, av.VideoFrame):
                break
        if not head or not isinstance(head[-1], av.VideoFrame):
            span = "" if plan.start is None and plan.end is None else " between --start and --end"
            raise VideoError(f"{src} has no video frames{span}")
        first = head[-1]
        sink = sink_for(source, plan, first)
        deep = max(c.bits for c in first.format.components) > 8
        to_frame = _converter(first.width, first.height, "rgb48le" if deep else "rgb24")
        batch = _batch_size(options.batch, first.width, first.height, upscaler.scale)
        _pipeline(itertools.chain(head, items), to_frame, upscaler, sink, batch, cancel or threading.Event(),
                  progress, plan.total, stats, report, threads)
    finally:
        busy = {t.name for t in threads if t.is_alive()}  # only after Ctrl-C, and only for a moment
        if sink is not None and "video-encoder" not in busy:
            sink.close()
        if "video-decoder" not in busy:
            source.close()
    report.frames = stats.done
    report.corrupt_packets = stats.corrupt
    if stats.corrupt:
        report.warnings.append(f"skipped {stats.corrupt} corrupt packet(s) that would not decode; "
                               f"the other frames keep their timestamps")
    if stats.untimed:
        report.warnings.append(f"dropped {stats.untimed} copied packet(s) without timestamps")
    if stats.nudged:
        report.warnings.append(f"{stats.nudged} frame(s) repeated an earlier timestamp and were moved one tick later")
    expected = report.total
    if expected and stats.done < (expected if report.total_exact else expected * 0.95):
        report.warnings.append(f"the video ended after {stats.done} of the {expected} frames its header promises: "
                               f"a truncated file? The output holds what could be read")


def _pipeline(items: Iterable, to_frame, upscaler, sink, batch: int, cancel: threading.Event, progress,
              total: int | None, stats: _Stats, report: VideoReport, threads: list[threading.Thread]) -> None:
    """Decoder, engine and encoder threads with bounded queues; this thread reports progress and reacts
    to cancel and Ctrl-C. `threads` receives the workers (all finished unless interrupted)."""
    stop = threading.Event()
    failures: list[BaseException] = []
    decoded: queue.Queue = queue.Queue(maxsize=2 * batch)
    upscaled: queue.Queue = queue.Queue(maxsize=2 * batch)

    def decode() -> None:
        for item in items:
            _put(decoded, to_frame(item) if isinstance(item, av.VideoFrame) else item, stop)
        _put(decoded, _END, stop)

    def infer() -> None:
        pending: list[Frame] = []
        while True:
            item = _get(decoded, stop)
            if item is _END or (isinstance(item, Frame) and len(pending) + 1 >= batch):
                if item is not _END:
                    pending.append(item)
                for frame, pixels in zip(pending, _upscale_batch(upscaler, [f.pixels for f in pending], stop)):
                    _put(upscaled, replace(frame, pixels=pixels), stop)
                pending = []
                if item is _END:
                    _put(upscaled, _END, stop)
                    return
            elif isinstance(item, Frame):
                pending.append(item)
            else:
                _put(upscaled, item, stop)

    def encode() -> None:
        try:
            while True:
                item = _get(upscaled, stop)
                if item is _END:
                    sink.finish()
                    return
                if isinstance(item, Frame):
                    sink.frame(item)
                    stats.done += 1
                else:
                    sink.packet(item)
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
        raise Cancelled("stopped before the end; no output was kept")
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


def _upscale_batch(upscaler, frames: list[np.ndarray], stop: threading.Event) -> list[np.ndarray]:
    """N HxWx3 uint8/uint16 frames -> N scaled frames of the same type, in one engine call."""
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
    return [np.ascontiguousarray(frame) for frame in out]


# ----------------------------------------------------------------------------- reading
def _open_input(src: Path):
    if src.is_dir():
        raise VideoError(f"{src} is a folder; folders of frames go through `upscale image {src} -o OUT`")
    if not src.exists():
        raise VideoError(f"{src} does not exist")
    try:
        source = av.open(str(src))
    except av.error.FFmpegError as exc:
        raise VideoError(f"{src} is not a video we can read ({reason(exc)})") from None
    name = source.format.name
    if name.endswith("_pipe") or name == "image2":
        source.close()
        raise VideoError(f"{src} is a still image; use `upscale image`")
    if not source.streams.video:
        source.close()
        raise VideoError(f"{src} has no video stream")
    return source


def _plan(source, options: VideoOptions) -> Plan:
    """Pick the video stream and the streams to copy, and how many frames to expect."""
    candidates = [s for s in source.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not candidates:  # an audio file whose only picture is its cover: nothing moves, so nothing to upscale
        raise VideoError("this file has no video, only a cover picture (an audio file?); upscale the picture "
                         "with `upscale image` if that is what you want")
    video = candidates[0]
    video.thread_type = "AUTO"
    copy = [s for s in source.streams if s.type in ("audio", "subtitle")]
    start, end = options.start, options.end
    rate = video.average_rate or video.guessed_rate
    tag = video.metadata.get("DURATION") or video.metadata.get("duration")  # Matroska keeps it per stream
    if video.duration is not None and video.time_base:
        length = Fraction(video.duration) * video.time_base
    elif tag and re.fullmatch(r"\d+:\d+:\d+(\.\d+)?", tag):
        length = parse_time(tag)
    elif source.duration is not None:
        length = Fraction(source.duration, av.time_base)
    else:
        length = None
    if start is None and end is None and video.frames > 0:
        return Plan(video, copy, start, end, int(video.frames), True)
    total = None
    if rate and (length is not None or end is not None):
        stop_at = min(x for x in (length, end) if x is not None)
        total = max(0, round((stop_at - (start or 0)) * rate))
    return Plan(video, copy, start, end, total, False)


def _read(source, plan: Plan, stats: _Stats) -> Iterator:
    """Decoded video frames (av.VideoFrame) and copied packets (av.Packet), trimmed to [start, end) and
    shifted so that `start` becomes time zero; packets that fail to decode are counted and skipped."""
    video, start, end = plan.video, plan.start, plan.end
    streams = [video, *plan.copy]
    if start:
        try:
            source.seek(int(start * av.time_base), backward=True)
        except av.error.FFmpegError:
            pass  # not seekable: read from the beginning and drop what comes before start
    waiting = {s.index for s in streams if s.type != "subtitle"}  # streams not yet past `end`
    last_pts = None
    default_step = _default_step(video)
    for packet in _packets(source, streams, stats):
        if packet.stream.index == video.index:
            if video.index not in waiting:
                continue  # past `end`; only the copied streams are still catching up
            try:
                frames = video.decode(packet)
            except av.error.InvalidDataError:
                stats.corrupt += 1
                continue
            for frame in frames:
                pts = frame.pts if frame.pts is not None else (0 if last_pts is None else last_pts + default_step)
                if last_pts is not None and pts <= last_pts:
                    pts, stats.nudged = last_pts + 1, stats.nudged + 1
                last_pts = pts
                t = pts * video.time_base
                if end is not None and t >= end:
                    waiting.discard(video.index)
                    break
                if start is not None and t < start:
                    continue
                frame.pts = pts - _ticks(start, video.time_base)
                yield frame
        elif packet.size:
            ts = packet.pts if packet.pts is not None else packet.dts
            if ts is None:
                stats.untimed += 1
                continue
            t = ts * packet.time_base
            if end is not None and t >= end:
                waiting.discard(packet.stream.index)
            elif start is None or t >= start:
                shift = _ticks(start, packet.time_base)
                if shift:
                    packet.pts = None if packet.pts is None else packet.pts - shift
                    packet.dts = None if packet.dts is None else packet.dts - shift
                yield packet
        if end is not None and not waiting:
            return


def _packets(source, streams, stats: _Stats, give_up: int = 20) -> Iterator:
    """Demux, stepping over packets the demuxer itself cannot read (counted as corrupt)."""
    failures = 0
    while True:
        try:
            for packet in source.demux(streams):
                failures = 0
                yield packet
            return
        except av.error.InvalidDataError:
            stats.corrupt += 1
            failures += 1
            if failures >= give_up:
                return


def _ticks(seconds: Fraction | None, time_base: Fraction) -> int:
    return 0 if not seconds else round(seconds / time_base)


def _default_step(video) -> int:
    rate = video.average_rate or video.guessed_rate or 25
    return max(1, round(1 / (rate * video.time_base)))


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
            raise VideoError(f"{folder} already holds frame_*.png files; pass --overwrite or choose an empty folder")


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


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
