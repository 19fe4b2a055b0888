"""Writing the upscaled video: a container with every input stream it can hold, or numbered PNG frames.

Timestamps, colour tags, rotation, chapters and stream metadata are carried over from the input; what the
chosen container cannot hold becomes a one-line warning in the report instead of a silent loss.
"""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .images import write_image
from .video_types import Frame, Plan, VideoError, VideoOptions, VideoReport, reason

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
RGB_MATRIX, BT709, LIMITED_RANGE = 0, 1, 1  # AVCOL_SPC_RGB, AVCOL_SPC_BT709, AVCOL_RANGE_MPEG


class VideoSink:
    """The output container: the upscaled video stream plus every input stream it can hold, unchanged."""

    def __init__(self, path: Path, source, plan: Plan, first: av.VideoFrame, scale: int,
                 options: VideoOptions, report: VideoReport) -> None:
        self.path, self.closed = path, False
        try:
            self.output = av.open(str(path), "w")
        except (ValueError, av.error.FFmpegError) as exc:
            raise VideoError(f"cannot tell the container from {report.output.name!r} ({reason(exc)}); "
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
        range_, space = first.color_range, first.colorspace
        if int(space) == RGB_MATRIX and not stream.pix_fmt.startswith(("gbr", "rgb", "bgr")):
            # An RGB source written as YUV: the "gbr" matrix tag is not a YUV matrix (H.264 refuses it), so the
            # frames are converted with BT.709 and tagged so, in limited range as YUV players expect.
            range_, space = LIMITED_RANGE, BT709
        ctx.color_range, ctx.colorspace = range_, space
        ctx.color_primaries, ctx.color_trc = first.color_primaries, first.color_trc
        if video.sample_aspect_ratio:
            ctx.sample_aspect_ratio = video.sample_aspect_ratio
        stream.metadata.update(tags_to_copy(video.metadata))
        stream.disposition = int(video.disposition)
        matrix = display_matrix(first)
        if matrix is not None:
            stream.set_display_matrix(matrix)
            if fmt not in ROTATION_FORMATS:
                report.warnings.append(f"the {kind} container cannot store rotation ({first.rotation} degrees); "
                                       f"players will show the video unrotated (use .mp4 or .mkv to keep it)")
        self.video, self.pix_fmt = stream, stream.pix_fmt
        self.colorspace = SWS_COLORSPACE.get(int(space))
        self.color_range = int(range_) or None
        self.tags = (range_, space, first.color_primaries, first.color_trc)
        self.streams = {}
        for s in plan.copy:
            label = f"{s.type} #{s.index} ({s.codec_context.name if s.codec_context else '?'})"
            try:
                copied = out.add_stream_from_template(s)
            except ValueError:
                report.warnings.append(f"{label} not copied: the {kind} container cannot hold it; "
                                       f"use .mkv to keep it")
                continue
            copied.metadata.update(tags_to_copy(s.metadata))
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
        out.metadata.update(tags_to_copy(source.metadata))
        chapters = clipped_chapters(source.chapters(), plan.start, plan.end)
        if chapters:
            if fmt in CHAPTER_FORMATS:
                out.set_chapters(chapters)
            else:
                report.warnings.append(f"{len(chapters)} chapter(s) not kept: the {kind} container has none")
        try:
            out.start_encoding()
        except (ValueError, av.error.FFmpegError) as exc:
            raise VideoError(f"cannot start writing {kind} with {encoder.name} "
                             f"({stream.width}x{stream.height}, {stream.pix_fmt}): {reason(exc)}") from None

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
        if name == "libx265":  # x265 prints its own banner and statistics to stderr unless told not to
            result["x265-params"] = "log-level=error"
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

    def frame(self, item: Frame) -> None:
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


class FramesSink:
    """Numbered PNG frames, each written atomically (images.write_image), 16-bit sources kept 16-bit."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.index = folder, 0

    def frame(self, item: Frame) -> None:
        self.index += 1
        write_image(self.folder / f"frame_{self.index:06d}.png", item.pixels, format="PNG")

    def packet(self, packet: av.Packet) -> None:
        pass

    def finish(self) -> None:
        pass

    def close(self) -> None:
        pass


def tags_to_copy(metadata: dict) -> dict:
    return {k: v for k, v in metadata.items() if k.lower() not in SKIP_TAGS}


def display_matrix(frame: av.VideoFrame) -> list[int] | None:
    """The frame's 3x3 display matrix (rotation and flips, FFmpeg's layout), or None when upright."""
    for data in frame.side_data:
        if data.type.name == "DISPLAYMATRIX":
            matrix = list(struct.unpack("<9i", bytes(data)[:36]))
            return None if matrix == [65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30] else matrix
    return None


def clipped_chapters(chapters: list[dict], start: Fraction | None, end: Fraction | None) -> list[dict]:
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
