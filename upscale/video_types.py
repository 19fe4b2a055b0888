"""What the parts of a video run hand each other: options, the report, frames, the plan, the errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .errors import UpscaleError


class VideoError(UpscaleError):
    """A video the pipeline cannot read or write as asked; the message names the problem and the fix."""


class Cancelled(UpscaleError):
    """The run was stopped through its cancel event; nothing was left at the output path."""


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
    overwrite: bool = False         # replace OUT, and discard what a stopped run left for it
    resume: bool = False            # continue the stopped run that made OUT's partial folder
    segment_frames: int | None = None  # frames per closed segment (None: about 10 s of video)
    audio: str = "copy"             # copy (converting what the container cannot hold), reencode, none
    subtitles: str = "copy"         # copy (converting what the container cannot hold), convert, none
    compat: bool = False            # 8-bit 4:2:0, which every player takes, whatever the source
    outscale: float | None = None   # the final factor: the model, then a resize (sides as the pixel format needs; None: the model's)


@dataclass
class VideoReport:
    """What a run produced and everything it could not keep, as one-line warnings."""

    output: Path
    frames: int = 0
    seconds: float = 0.0
    total: int | None = None        # the frame count promised up front (exact or estimated)
    total_exact: bool = False
    corrupt_packets: int = 0
    resumed_after: int = 0          # frames a stopped run had finished (not upscaled again)
    video_format: str = ""          # codec, profile and pixel format written, e.g. "H.264 High 10, yuv420p10le"
    copied: list[str] = field(default_factory=list)
    converted: list[str] = field(default_factory=list)  # streams re-encoded, each with the reason
    warnings: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Frame:
    pixels: np.ndarray              # HxWx3 uint8 (8-bit sources) or uint16 (deeper sources)
    pts: int                        # in the input video stream's time base
    duration: int


@dataclass
class Plan:
    video: av.video.stream.VideoStream
    copy: list                      # input streams whose packets are copied
    origin: Fraction                # the file's first timestamp (seconds): times count from here
    start: Fraction | None
    end: Fraction | None
    total: int | None
    total_exact: bool


def reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
