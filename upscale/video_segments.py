"""The upscaled video kept on disk as it is made, so a stopped run resumes where it stopped.

The encoder starts afresh every `segment_frames` frames and each such segment is closed as a Matroska file
of its own in `.OUT.partial/` beside OUT: written under a temporary name, renamed when complete, then listed
in `manifest.json` (rewritten atomically). A kill at any moment therefore leaves only whole segments and at
most one temporary file, which the next run deletes. Matroska keeps milliseconds, so each segment's exact
packet times (in the input's time base) go beside it in a small JSON file; the final file is assembled
from those (`video_output.assemble`). The manifest also holds the settings that shaped the frames: a
resume with other settings would make a file whose parts disagree, so it is refused.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from .video_types import Frame, VideoError, reason

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
MAX_MANIFEST_BYTES = 4 << 20       # a manifest lists segment names only: far below this
MAX_TIMES_BYTES = 64 << 20         # one segment's packet times
SEGMENT_SECONDS = 10               # of video per segment: the most a kill can cost, and x264's own GOP length
SEGMENT_PIXELS = 1_000_000_000     # output pixels per segment, so large frames close segments sooner
_SEGMENT = re.compile(r"(\d{6})\.(mkv|json)")


def partial_folder(dst: Path) -> Path:
    """Where the finished part of a run making `dst` is kept until the file is complete."""
    return dst.parent / f".{dst.name}.partial"


def segment_length(rate, width: int, height: int, batch: int) -> int:
    """Frames per segment: about SEGMENT_SECONDS of video, fewer for large frames, a whole number of engine
    batches (so a resumed run groups frames exactly as an uninterrupted one)."""
    frames = min(float(rate or 25) * SEGMENT_SECONDS, SEGMENT_PIXELS / max(1, width * height))
    return batch * max(1, round(frames / batch))


@dataclass
class Manifest:
    """What a partial folder holds: the settings that made it and its closed segments, in order."""

    settings: dict
    segment_frames: int
    segments: list[dict] = field(default_factory=list)  # {"name": "000001", "frames": n}

    @property
    def frames_done(self) -> int:
        return sum(s["frames"] for s in self.segments)

    def save(self, folder: Path) -> None:
        data = {"version": MANIFEST_VERSION, "settings": self.settings, "segment_frames": self.segment_frames,
                "segments": self.segments}
        write_atomically(folder / MANIFEST, json.dumps(data, indent=1).encode())

    @classmethod
    def load(cls, folder: Path) -> "Manifest | None":
        """The manifest in `folder`, or None when there is none; a damaged one is a VideoError."""
        path = folder / MANIFEST
        if not path.is_file():
            return None
        damaged = VideoError(f"{path} is damaged; delete {folder} to start over")
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise damaged
        try:
            data = json.loads(path.read_bytes())
            manifest = cls(dict(data["settings"]), int(data["segment_frames"]), list(data["segments"]))
            ok = (data.get("version") == MANIFEST_VERSION and manifest.segment_frames > 0
                  and all(re.fullmatch(r"\d{6}", s["name"]) and int(s["frames"]) > 0 for s in manifest.segments))
        except (ValueError, KeyError, TypeError, AttributeError):
            ok = False
        if not ok or any(not (folder / f"{s['name']}.mkv").is_file() for s in manifest.segments):
            raise damaged
        return manifest


def check_same_settings(folder: Path, kept: dict, settings: dict) -> None:
    """Refuse to resume the stopped run in `folder` (made with `kept`) with other settings, naming them: its
    finished part and the rest would not belong to one output."""
    differ = sorted(k for k in set(kept) | set(settings) if kept.get(k) != settings.get(k))
    if differ:
        raise VideoError(f"cannot resume: the stopped run in {folder} was made with other settings "
                         f"({', '.join(differ)}); rerun with the same ones, or use --overwrite to start over")


def clear(folder: Path) -> None:
    """Delete a partial folder: only the files a run puts there, then the folder if nothing else is left."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path.name == MANIFEST or _SEGMENT.fullmatch(path.name) or path.name.startswith(".tmp-"):
            path.unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:
        pass  # something not ours is in there: leave it


def remove_unfinished(folder: Path, manifest: Manifest) -> None:
    """Files of a segment that was being written when the run stopped, or that the manifest does not list."""
    listed = {s["name"] for s in manifest.segments}
    for path in folder.iterdir():
        match = _SEGMENT.fullmatch(path.name)
        if path.name.startswith(".tmp-") or (match and match.group(1) not in listed):
            path.unlink(missing_ok=True)


def write_atomically(path: Path, data: bytes) -> None:
    """Write under `.tmp-NAME` beside `path`, fsync, then rename: a kill leaves the old file or the new one."""
    temporary = path.with_name(f".tmp-{path.name}")
    with open(temporary, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


def segment_paths(folder: Path, manifest: Manifest) -> list[tuple[Path, Path]]:
    return [(folder / f"{s['name']}.mkv", folder / f"{s['name']}.json") for s in manifest.segments]


def read_times(path: Path) -> list[list[int]]:
    """A segment's packet times: [pts, dts, duration] per packet, in the input video's time base."""
    if path.stat().st_size > MAX_TIMES_BYTES:
        raise VideoError(f"{path} is larger than any segment's times; delete {path.parent} to start over")
    try:
        times = json.loads(path.read_bytes())
        if not all(isinstance(t, list) and len(t) == 3 for t in times):
            raise ValueError
    except ValueError:
        raise VideoError(f"{path} is damaged; delete {path.parent} to start over") from None
    return times


@dataclass
class Encoding:
    """How every segment encodes: decided once from the first frame, the same for all segments."""

    codec: str
    codec_options: dict
    rate: object
    time_base: object
    width: int
    height: int
    pix_fmt: str
    colorspace: int | None      # swscale's matrix for the RGB -> YUV conversion
    color_range: int | None
    tags: tuple                 # (range, space, primaries, trc) written on every frame
    sample_aspect_ratio: object


class SegmentWriter:
    """The video sink of a run: frames in, closed segments out, each recorded in the manifest."""

    def __init__(self, folder: Path, manifest: Manifest, encoding: Encoding) -> None:
        self.folder, self.manifest, self.encoding = folder, manifest, encoding
        self.output = self.stream = None
        self.frames = 0
        self.times: list[list[int]] = []
        self.durations: dict[int, int] = {}  # pts -> the input frame's duration: encoders drop durations

    def _open(self) -> None:
        e = self.encoding
        name = f"{len(self.manifest.segments) + 1:06d}"
        self.name, self.tmp = name, self.folder / f".tmp-{name}.mkv"
        self.output = av.open(str(self.tmp), "w", format="matroska")
        stream = self.output.add_stream(e.codec, rate=e.rate, options=e.codec_options)
        stream.width, stream.height, stream.pix_fmt = e.width, e.height, e.pix_fmt
        stream.codec_context.time_base = e.time_base
        ctx = stream.codec_context
        ctx.color_range, ctx.colorspace, ctx.color_primaries, ctx.color_trc = e.tags
        if e.sample_aspect_ratio:
            ctx.sample_aspect_ratio = e.sample_aspect_ratio
        try:
            self.output.start_encoding()
        except (ValueError, av.error.FFmpegError) as exc:
            raise VideoError(f"cannot start {e.codec} ({e.width}x{e.height}, {e.pix_fmt}): {reason(exc)}") from None
        self.stream, self.frames, self.times, self.durations = stream, 0, [], {}

    def frame(self, item: Frame) -> None:
        if self.output is None:
            self._open()
        e = self.encoding
        frame = av.VideoFrame.from_ndarray(item.pixels, format="rgb24" if item.pixels.dtype == np.uint8 else "rgb48le")
        frame = frame.reformat(format=e.pix_fmt, dst_colorspace=e.colorspace, dst_color_range=e.color_range)
        frame.color_range, frame.colorspace, frame.color_primaries, frame.color_trc = e.tags
        frame.pts, frame.time_base, frame.duration = item.pts, e.time_base, item.duration
        self.durations[item.pts] = item.duration
        self._mux(self.stream.encode(frame))
        self.frames += 1
        if self.frames == self.manifest.segment_frames:
            self._close_segment()

    def _mux(self, packets) -> None:
        for packet in packets:
            duration = self.durations.pop(packet.pts, None)
            if duration:
                packet.duration = duration
            self.times.append([packet.pts, packet.dts, packet.duration])
        self.output.mux(packets)

    def _close_segment(self) -> None:
        self._mux(self.stream.encode(None))
        self.output.close()
        self.output = None
        write_atomically(self.folder / f"{self.name}.json", json.dumps(self.times).encode())
        os.replace(self.tmp, self.folder / f"{self.name}.mkv")
        self.manifest.segments.append({"name": self.name, "frames": self.frames})
        self.manifest.save(self.folder)

    def finish(self) -> None:
        if self.output is not None:
            self._close_segment()

    def close(self) -> None:
        """After a failure or a stop: the segment being written is not kept."""
        if self.output is not None:
            try:
                self.output.close()
            except Exception:  # noqa: BLE001 - the file is deleted anyway
                pass
            self.output = None
            self.tmp.unlink(missing_ok=True)
