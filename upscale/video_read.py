"""Reading the input video: open it, plan what to take, decode its frames, and demux the streams to copy.

Times the user gives (--start, --end) count from the start of the file, whatever its first timestamp
(MPEG-TS from cameras and broadcast starts at 1.4 s or at hours), and the output starts at zero: every
stream is shifted by the same amount, so their offsets against each other are kept, as ffmpeg does.
"""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av

from .video_types import Plan, VideoError, VideoOptions, reason


class ReadStats:
    """What reading had to step over, for the report's warnings."""

    def __init__(self) -> None:
        self.corrupt = 0
        self.nudged = 0
        self.untimed = 0


def open_input(src: Path):
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


def plan_reading(source, options: VideoOptions) -> Plan:
    """Pick the video stream and the streams to copy, where the file starts, and how many frames to expect."""
    candidates = [s for s in source.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not candidates:  # an audio file whose only picture is its cover: nothing moves, so nothing to upscale
        raise VideoError("this file has no video, only a cover picture (an audio file?); upscale the picture "
                         "with `upscale image` if that is what you want")
    video = candidates[0]
    # Slice threads, not frame threads: a packet that fails to decode under frame threading takes the
    # frames in flight on other threads with it (17 of 20 frames of a Matroska file with one bad packet).
    video.thread_type = "SLICE"
    copy = [s for s in source.streams if s.type in ("audio", "subtitle")]
    origin = Fraction(source.start_time, av.time_base) if source.start_time not in (None, 0) else Fraction(0)
    start, end = options.start, options.end
    rate = video.average_rate or video.guessed_rate
    tag = video.metadata.get("DURATION") or video.metadata.get("duration")  # Matroska keeps it per stream
    if video.duration is not None and video.time_base:
        length = Fraction(video.duration) * video.time_base
        if video.start_time is not None:
            length += Fraction(video.start_time) * video.time_base - origin
    elif tag and re.fullmatch(r"\d+:\d+:\d+(\.\d+)?", tag):
        length = _clock(tag)
    elif source.duration is not None:
        length = Fraction(source.duration, av.time_base)
    else:
        length = None
    if start is None and end is None and video.frames > 0:
        return Plan(video, copy, origin, start, end, int(video.frames), True)
    total = None
    if rate and (length is not None or end is not None):
        stop_at = min(x for x in (length, end) if x is not None)
        total = max(0, round((stop_at - (start or 0)) * rate))
    return Plan(video, copy, origin, start, end, total, False)


def _clock(text: str) -> Fraction:
    hours, minutes, seconds = text.split(":")
    return (int(hours) * 60 + int(minutes)) * 60 + Fraction(seconds)


def read_frames(source, plan: Plan, stats: ReadStats) -> Iterator[av.VideoFrame]:
    """Decoded video frames in [start, end) of the file's own clock, re-timed so that `start` (or the file's
    first timestamp) is zero; packets that fail to decode are counted and skipped."""
    video, start, end = plan.video, plan.start, plan.end
    _seek(source, plan)
    last_pts = None
    default_step = _default_step(video)
    shift = _ticks(plan.origin + (start or 0), video.time_base)
    for packet in _demux(source, [video], stats):
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
            t = pts * video.time_base - plan.origin
            if end is not None and t >= end:
                return
            if start is not None and t < start:
                continue
            frame.pts = pts - shift
            yield frame


def copy_packets(source, plan: Plan, stats: ReadStats) -> Iterator[av.Packet]:
    """The packets of the streams to copy, in [start, end) and shifted like the video (`read_frames`);
    packets without a timestamp cannot be placed and are left out."""
    if not plan.copy:
        return
    _seek(source, plan)
    start, end = plan.start, plan.end
    waiting = {s.index for s in plan.copy if s.type != "subtitle"}  # streams not yet past `end`
    for packet in _demux(source, plan.copy, None):
        if not packet.size:
            continue
        ts = packet.pts if packet.pts is not None else packet.dts
        if ts is None:
            stats.untimed += 1
            continue
        t = ts * packet.time_base - plan.origin
        if end is not None and t >= end:
            waiting.discard(packet.stream.index)
            if not waiting:
                return
        elif start is None or t >= start:
            shift = _ticks(plan.origin + (start or 0), packet.time_base)
            if shift:
                packet.pts = None if packet.pts is None else packet.pts - shift
                packet.dts = None if packet.dts is None else packet.dts - shift
            yield packet


def _seek(source, plan: Plan) -> None:
    """Near --start: to the keyframe before it where the container seeks exactly, else to the beginning.

    A fresh source is read from its beginning without a seek. MPEG-TS seeks by timestamp search and lands
    on any packet: the decoder then has no keyframe until the next one (perhaps never), so the landing is
    checked on the video stream first."""
    if not plan.start:
        return
    target = int((plan.origin + plan.start) * av.time_base)
    try:
        source.seek(target, backward=True)
        landed = next((p for p in source.demux(plan.video) if p.pts is not None or p.dts is not None), None)
        exact = (landed is not None and landed.is_keyframe
                 and (landed.pts if landed.pts is not None else landed.dts) * landed.time_base
                 <= plan.origin + plan.start)
        source.seek(target if exact else int(plan.origin * av.time_base), backward=True)
    except (av.error.FFmpegError, StopIteration):
        pass  # not seekable: read from where we are and drop what comes before start


def _demux(source, streams, stats: ReadStats | None, give_up: int = 20) -> Iterator[av.Packet]:
    """Demux, stepping over packets the demuxer itself cannot read (counted as corrupt)."""
    failures = 0
    while True:
        try:
            for packet in source.demux(streams):
                failures = 0
                yield packet
            return
        except av.error.InvalidDataError:
            if stats is not None:
                stats.corrupt += 1
            failures += 1
            if failures >= give_up:
                return


def _ticks(seconds: Fraction, time_base: Fraction) -> int:
    return 0 if not seconds else round(seconds / time_base)


def _default_step(video) -> int:
    rate = video.average_rate or video.guessed_rate or 25
    return max(1, round(1 / (rate * video.time_base)))
