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
import struct
import threading
import time
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Iterator

import av
import numpy as np
import torch

from .errors import UpscaleError
from .images import write_image

ProgressCallback = Callable[[int, "int | None"], None]  # (frames done, total or estimate)

DEFAULT_CRF = {"libx264": 18, "libx265": 20, "libvpx-vp9": 24, "libsvtav1": 28}
PRESET_CODECS = {"libx264", "libx265", "libsvtav1"}
# Output formats (FFmpeg muxer names) that store a display matrix, and that store chapters.
ROTATION_FORMATS = {"mov", "mp4", "ipod", "3gp", "3g2", "ismv", "psp", "f4v", "matroska", "webm"}
CHAPTER_FORMATS = {"mov", "mp4", "ipod", "3gp", "3g2", "ismv", "psp", "f4v", "matroska", "webm", "nut", "ogg"}
# Tags the muxer writes itself; copying the input's would be stale or wrong.
SKIP_TAGS = {"encoder", "major_brand", "minor_version", "compatible_brands", "duration",
             "number_of_frames", "number_of_bytes", "bps", "_statistics_tags", "_statistics_writing_app",
             "_statistics_writing_date_utc"}
# Colour matrices as FFmpeg tags them (AVColorSpace) -> as swscale takes them (SWS_CS_*).
SWS_COLORSPACE = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}
MAX_BATCH_BYTES = 256 << 20  # the engine's float32 output for one batch stays under this
_END = object()


class VideoError(UpscaleError):
    """A video the pipeline cannot read or write as asked; the message names the problem and the fix."""


class Cancelled(UpscaleError):
    """The run was stopped through its cancel event; nothing was left at the output path."""


class _Stopped(Exception):
    """Raised inside a worker when another worker failed or the run was cancelled."""


@dataclass
class VideoOptions:
    """How to encode and what to keep. None means: the codec's or the input's own choice."""

    codec: str | None = None        # libx264 (webm: libvpx-vp9) unless given
    crf: int | None = None
    preset: str | None = None
    pix_fmt: str | None = None      # the input's when the encoder takes it, else yuv420p
    start: Fraction | None = None   # seconds; keep frames and packets with start <= t < end
    end: Fraction | None = None
    batch: int = 4                  # frames per engine call (lowered for large frames)
    overwrite: bool = False


@dataclass
class VideoReport:
    """What a run produced and everything it could not keep, as one-line warnings."""

    output: Path
    frames: int = 0
    seconds: float = 0.0
    total: int | None = None        # the frame count promised up front (exact or estimated)
    total_exact: bool = False
    corrupt_packets: int = 0
    copied: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Frame:
    pixels: np.ndarray              # HxWx3 uint8 (8-bit sources) or uint16 (deeper sources)
    pts: int                        # in the input video stream's time base
    duration: int


@dataclass
class _Stats:
    done: int = 0
    corrupt: int = 0
    untimed: int = 0
    nudged: int = 0


@dataclass
class _Plan:
    video: av.video.stream.VideoStream
    copy: list                      # input streams whose packets are copied
    start: Fraction | None
    end: Fraction | None
    total: int | None
    total_exact: bool


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
        return _VideoSink(partial, source, plan, first, upscaler.scale, options, report)

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
    _process(src, upscaler, options, report, lambda source, plan, first: _FramesSink(folder), progress, cancel)
    return report


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
        pending: list[_Frame] = []
        while True:
            item = _get(decoded, stop)
            if item is _END or (isinstance(item, _Frame) and len(pending) + 1 >= batch):
                if item is not _END:
                    pending.append(item)
                for frame, pixels in zip(pending, _upscale_batch(upscaler, [f.pixels for f in pending], stop)):
                    _put(upscaled, replace(frame, pixels=pixels), stop)
                pending = []
                if item is _END:
                    _put(upscaled, _END, stop)
                    return
            elif isinstance(item, _Frame):
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
                if isinstance(item, _Frame):
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
    if progress:
        progress(stats.done, total)


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
        raise VideoError(f"{src} is not a video we can read ({_reason(exc)})") from None
    name = source.format.name
    if name.endswith("_pipe") or name == "image2":
        source.close()
        raise VideoError(f"{src} is a still image; use `upscale image`")
    if not source.streams.video:
        source.close()
        raise VideoError(f"{src} has no video stream")
    return source


def _plan(source, options: VideoOptions) -> _Plan:
    """Pick the video stream and the streams to copy, and how many frames to expect."""
    candidates = [s for s in source.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    video = candidates[0] if candidates else source.streams.video[0]
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
        return _Plan(video, copy, start, end, int(video.frames), True)
    total = None
    if rate and (length is not None or end is not None):
        stop_at = min(x for x in (length, end) if x is not None)
        total = max(0, round((stop_at - (start or 0)) * rate))
    return _Plan(video, copy, start, end, total, False)


def _read(source, plan: _Plan, stats: _Stats) -> Iterator:
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
    """av.VideoFrame -> _Frame of RGB pixels, read with the frame's own colour matrix and range."""
    def to_frame(frame: av.VideoFrame) -> _Frame:
        size = {} if (frame.width, frame.height) == (width, height) else {"width": width, "height": height}
        pixels = frame.to_ndarray(format=rgb, src_color_range=frame.color_range or None, **size)
        return _Frame(pixels, frame.pts, frame.duration or 0)
    return to_frame


# ----------------------------------------------------------------------------- writing
class _VideoSink:
    """The output container: the upscaled video stream plus every input stream it can hold, unchanged."""

    def __init__(self, path: Path, source, plan: _Plan, first: av.VideoFrame, scale: int,
                 options: VideoOptions, report: VideoReport) -> None:
        self.path, self.closed = path, False
        try:
            self.output = av.open(str(path), "w")
        except (ValueError, av.error.FFmpegError) as exc:
            raise VideoError(f"cannot tell the container from {report.output.name!r} ({_reason(exc)}); "
                             f"use .mp4, .mkv, .mov or .webm") from None
        try:
            self._setup(source, plan, first, scale, options, report)
        except BaseException:
            self.close()
            raise

    def _setup(self, source, plan, first, scale, options, report) -> None:
        out, video = self.output, plan.video
        fmt = out.format.name.split(",")[0]
        kind = report.output.suffix or fmt
        codec = options.codec or ("libvpx-vp9" if fmt == "webm" else "libx264")
        try:
            encoder = av.Codec(codec, "w")
        except Exception:  # noqa: BLE001 - av raises several kinds for unknown names
            raise VideoError(f"unknown video encoder {codec!r} (try libx264, libx265, libvpx-vp9 or ffv1)") from None
        codec_options = self._codec_options(encoder.name, options, report)
        rate = video.average_rate or video.guessed_rate or 25
        try:
            stream = out.add_stream(codec, rate=rate, options=codec_options)
        except ValueError:
            raise VideoError(f"the {kind} container cannot hold {encoder.name} video; "
                             f"choose another --codec or an .mkv output") from None
        stream.width, stream.height = first.width * scale, first.height * scale
        stream.pix_fmt = self._pix_fmt(encoder, first, options)
        stream.codec_context.time_base = video.time_base
        stream.time_base = video.time_base
        ctx = stream.codec_context
        ctx.color_range, ctx.colorspace = first.color_range, first.colorspace
        ctx.color_primaries, ctx.color_trc = first.color_primaries, first.color_trc
        if video.sample_aspect_ratio:
            ctx.sample_aspect_ratio = video.sample_aspect_ratio
        stream.metadata.update(_tags(video.metadata))
        stream.disposition = int(video.disposition)
        matrix = _display_matrix(first)
        if matrix is not None:
            stream.set_display_matrix(matrix)
            if fmt not in ROTATION_FORMATS:
                report.warnings.append(f"the {kind} container cannot store rotation ({first.rotation} degrees); "
                                       f"players will show the video unrotated (use .mp4 or .mkv to keep it)")
        self.video, self.pix_fmt = stream, stream.pix_fmt
        self.colorspace = SWS_COLORSPACE.get(int(first.colorspace))
        self.color_range = int(first.color_range) or None
        self.tags = (first.color_range, first.colorspace, first.color_primaries, first.color_trc)
        self.streams = {}
        for s in plan.copy:
            label = f"{s.type} #{s.index} ({s.codec_context.name if s.codec_context else '?'})"
            try:
                copied = out.add_stream_from_template(s)
            except ValueError:
                report.warnings.append(f"{label} not copied: the {kind} container cannot hold it; "
                                       f"use .mkv to keep it")
                continue
            copied.metadata.update(_tags(s.metadata))
            copied.disposition = int(s.disposition)
            self.streams[s.index] = copied
            report.copied.append(label)
        for s in source.streams.attachments:  # fonts and covers: header data, no packets; Matroska only
            label = f"attachment #{s.index} ({s.metadata.get('filename', '?')})"
            if fmt == "matroska":
                out.add_stream_from_template(s)
                report.copied.append(label)
            else:
                report.warnings.append(f"{label} not copied: the {kind} container cannot hold it; use .mkv")
        for s in source.streams:  # a stream the demuxer discards (mp4's chapter track) holds nothing to keep
            if (s.type not in ("audio", "subtitle", "attachment") and s is not video
                    and s.discard != av.stream.Discard.all):
                report.warnings.append(f"{s.type} stream #{s.index} not copied (only audio and subtitles are)")
        out.metadata.update(_tags(source.metadata))
        chapters = _chapters(source.chapters(), plan.start, plan.end)
        if chapters:
            if fmt in CHAPTER_FORMATS:
                out.set_chapters(chapters)
            else:
                report.warnings.append(f"{len(chapters)} chapter(s) not kept: the {kind} container has none")
        try:
            out.start_encoding()
        except (ValueError, av.error.FFmpegError) as exc:
            raise VideoError(f"cannot start writing {kind} with {encoder.name} "
                             f"({stream.width}x{stream.height}, {stream.pix_fmt}): {_reason(exc)}") from None

    @staticmethod
    def _codec_options(name: str, options: VideoOptions, report: VideoReport) -> dict[str, str]:
        result: dict[str, str] = {}
        crf = options.crf if options.crf is not None else DEFAULT_CRF.get(name)
        if crf is not None:
            if name in DEFAULT_CRF or name == "libvpx":
                result["crf"] = str(crf)
                if name.startswith("libvpx"):
                    result["b"] = "0"  # constant quality, not a bitrate target
            else:
                report.warnings.append(f"--crf ignored: {name} has no constant-quality setting")
        if options.preset:
            if name in PRESET_CODECS:
                result["preset"] = options.preset
            elif name.startswith("libvpx") and options.preset.isdigit():
                result["cpu-used"] = options.preset
            else:
                report.warnings.append(f"--preset ignored: {name} has no presets")
        return result

    @staticmethod
    def _pix_fmt(encoder, first: av.VideoFrame, options: VideoOptions) -> str:
        supported = [f.name for f in (encoder.video_formats or [])]
        if options.pix_fmt:
            if supported and options.pix_fmt not in supported:
                raise VideoError(f"{encoder.name} cannot encode --pix-fmt {options.pix_fmt} "
                                 f"(it takes {', '.join(supported[:8])})")
            return options.pix_fmt
        if not supported or first.format.name in supported:
            return first.format.name
        return "yuv420p" if "yuv420p" in supported else supported[0]

    def frame(self, item: _Frame) -> None:
        frame = av.VideoFrame.from_ndarray(item.pixels, format="rgb24" if item.pixels.dtype == np.uint8 else "rgb48le")
        frame = frame.reformat(format=self.pix_fmt, dst_colorspace=self.colorspace, dst_color_range=self.color_range)
        frame.color_range, frame.colorspace, frame.color_primaries, frame.color_trc = self.tags
        frame.pts, frame.time_base, frame.duration = item.pts, self.video.codec_context.time_base, item.duration
        self.output.mux(self.video.encode(frame))

    def packet(self, packet: av.Packet) -> None:
        stream = self.streams.get(packet.stream.index)
        if stream is not None:
            packet.stream = stream
            self.output.mux(packet)

    def finish(self) -> None:
        self.output.mux(self.video.encode(None))
        self.closed = True
        self.output.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.output.close()
            except Exception:  # noqa: BLE001 - closing after a failure; the file is deleted anyway
                pass


class _FramesSink:
    """Numbered PNG frames, each written atomically (images.write_image), 16-bit sources kept 16-bit."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.index = folder, 0

    def frame(self, item: _Frame) -> None:
        self.index += 1
        write_image(self.folder / f"frame_{self.index:06d}.png", item.pixels, format="PNG")

    def packet(self, packet: av.Packet) -> None:
        pass

    def finish(self) -> None:
        pass

    def close(self) -> None:
        pass


# ----------------------------------------------------------------------------- small helpers
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


def _tags(metadata: dict) -> dict:
    return {k: v for k, v in metadata.items() if k.lower() not in SKIP_TAGS}


def _display_matrix(frame: av.VideoFrame) -> list[int] | None:
    """The frame's 3x3 display matrix (rotation and flips, FFmpeg's layout), or None when upright."""
    for data in frame.side_data:
        if data.type.name == "DISPLAYMATRIX":
            matrix = list(struct.unpack("<9i", bytes(data)[:36]))
            return None if matrix == [65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30] else matrix
    return None


def _chapters(chapters: list[dict], start: Fraction | None, end: Fraction | None) -> list[dict]:
    """Chapters shifted like the streams (start becomes zero) and clipped to [start, end)."""
    kept = []
    for ch in chapters:
        tb = ch["time_base"]
        lo, hi = ch["start"] * tb, ch["end"] * tb
        lo, hi = max(lo, start or 0), min(hi, end) if end is not None else hi
        if hi <= lo:
            continue
        offset = start or 0
        kept.append({"id": ch["id"], "time_base": tb, "metadata": dict(ch["metadata"]),
                     "start": round((lo - offset) / tb), "end": round((hi - offset) / tb)})
    return kept


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
