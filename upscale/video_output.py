"""Writing the upscaled video: how it is encoded, the final container assembled from the closed segments
(`video_segments`) with every input stream it can hold, or numbered PNG frames.

Timestamps, durations, colour tags, rotation, chapters and stream metadata are carried over from the input;
what the chosen container cannot hold becomes a one-line warning in the report instead of a silent loss.
"""

from __future__ import annotations

import heapq
import struct
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import av

from .images import write_image
from .video_read import ReadStats, copy_packets
from .video_segments import Encoding, read_times, write_atomically
from .video_streams import add_route, tags_to_copy
from .video_types import Frame, Plan, VideoError, VideoOptions, VideoReport, reason

DEFAULT_CRF = {"libx264": 18, "libx265": 20, "libvpx-vp9": 24, "libsvtav1": 28}
PRESET_CODECS = {"libx264", "libx265", "libsvtav1"}
# Output formats (FFmpeg muxer names) that store a display matrix, and that store chapters.
ROTATION_FORMATS = {"mov", "mp4", "ipod", "3gp", "3g2", "ismv", "psp", "f4v", "matroska", "webm"}
CHAPTER_FORMATS = {"mov", "mp4", "ipod", "3gp", "3g2", "ismv", "psp", "f4v", "matroska", "webm", "nut", "ogg"}
# Colour matrices as FFmpeg tags them (AVColorSpace) -> as swscale takes them (SWS_CS_*).
SWS_COLORSPACE = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}
RGB_MATRIX, BT709, LIMITED_RANGE = 0, 1, 1  # AVCOL_SPC_RGB, AVCOL_SPC_BT709, AVCOL_RANGE_MPEG
TIMESTAMPS = "timestamps.txt"  # beside --frames-out frames
PARTIAL_TIMESTAMPS = ".timestamps.partial"  # the times of the frames written so far
COMPAT_PIX_FMT = "yuv420p"  # 8-bit 4:2:0: what every hardware decoder and browser plays


def plan_encoding(plan: Plan, first: av.VideoFrame, size_for: Callable[[tuple[int, int]], tuple[int, int]],
                  options: VideoOptions, report: VideoReport) -> Encoding:
    """Encoder, settings, pixel format, size and colour tags of the output video, decided once from the first
    frame. `size_for(steps)` is the frame size (width, height) with sides rounded to multiples of the chosen
    pixel format's chroma subsampling."""
    video = plan.video
    codec = options.codec or ("libvpx-vp9" if report.output.suffix.lower() == ".webm" else "libx264")
    try:
        encoder = av.Codec(codec, "w")
    except Exception:  # noqa: BLE001 - av raises several kinds for unknown names
        raise VideoError(f"unknown video encoder {codec!r} (try libx264, libx265, libvpx-vp9 or ffv1)") from None
    if encoder.type != "video":
        raise VideoError(f"{codec!r} is not a video encoder (try libx264, libx265, libvpx-vp9 or ffv1)")
    pix_fmt = _pix_fmt(encoder, first, options)
    if options.compat and pix_fmt != COMPAT_PIX_FMT:
        if options.pix_fmt:
            raise VideoError(f"--compat writes {COMPAT_PIX_FMT}; it cannot be combined with --pix-fmt {options.pix_fmt}")
        if encoder.video_formats and COMPAT_PIX_FMT not in [f.name for f in encoder.video_formats]:
            raise VideoError(f"{encoder.name} cannot write {COMPAT_PIX_FMT}, which --compat needs")
        pix_fmt = COMPAT_PIX_FMT
    range_, space = first.color_range, first.colorspace
    if int(space) == RGB_MATRIX and not pix_fmt.startswith(("gbr", "rgb", "bgr")):
        # An RGB source written as YUV: the "gbr" matrix tag is not a YUV matrix (H.264 refuses it), so the
        # frames are converted with BT.709 and tagged so, in limited range as YUV players expect.
        range_, space = LIMITED_RANGE, BT709
    return Encoding(encoder.name, _codec_options(encoder.name, options, report),
                    video.average_rate or video.guessed_rate or 25, video.time_base,
                    *size_for(chroma_steps(pix_fmt)), pix_fmt, SWS_COLORSPACE.get(int(space)),
                    int(range_) or None, (range_, space, first.color_primaries, first.color_trc),
                    video.sample_aspect_ratio)


def check_container(path: Path, source, plan: Plan, first: av.VideoFrame, encoding: Encoding,
                    options: VideoOptions, report: VideoReport) -> None:
    """Everything the output container will refuse, convert or drop, found before any frame is upscaled:
    the streams are laid out in a file that is then deleted, and what cannot be kept becomes a warning."""
    try:
        _write_container(path, source, plan, first, options, report, video_template=None, encoding=encoding)
    finally:
        path.unlink(missing_ok=True)


def assemble(path: Path, segments: list[tuple[Path, Path]], source, plan: Plan, first: av.VideoFrame,
             options: VideoOptions, report: VideoReport, stats: ReadStats) -> None:
    """The output file from the closed segments and the input's other streams, interleaved by time.
    Packet times come from the segments' exact records; memory stays flat (one packet per stream)."""
    with av.open(str(segments[0][0])) as head:
        report.video_format = written_format(head.streams.video[0])
        _write_container(path, source, plan, first, options, VideoReport(output=report.output),
                         video_template=head.streams.video[0], segments=segments, stats=stats)


def _write_container(path: Path, source, plan: Plan, first: av.VideoFrame, options: VideoOptions,
                     report: VideoReport, *,
                     video_template=None, encoding: Encoding | None = None,
                     segments: list[tuple[Path, Path]] | None = None, stats: ReadStats | None = None) -> None:
    try:
        out = av.open(str(path), "w")
    except (ValueError, av.error.FFmpegError) as exc:
        raise VideoError(f"cannot tell the container from {report.output.name!r} ({reason(exc)}); "
                         f"use .mp4, .mkv, .mov or .webm") from None
    with out:
        fmt = out.format.name.split(",")[0]
        kind = report.output.suffix or fmt
        video = plan.video
        try:
            if video_template is not None:
                stream = out.add_stream_from_template(video_template)
            else:
                stream = out.add_stream(encoding.codec, rate=encoding.rate)
        except ValueError:
            codec = encoding.codec if encoding else video_template.codec_context.name
            raise VideoError(f"the {kind} container cannot hold {codec} video; "
                             f"choose another --codec or an .mkv output") from None
        stream.time_base = video.time_base
        stream.metadata.update(tags_to_copy(video.metadata))
        stream.disposition = int(video.disposition)
        matrix = display_matrix(first)
        if matrix is not None:
            stream.set_display_matrix(matrix)
            if fmt not in ROTATION_FORMATS:
                report.warnings.append(f"the {kind} container cannot store rotation ({first.rotation} degrees); "
                                       f"players will show the video unrotated (use .mp4 or .mkv to keep it)")
        routes = {}
        for s in plan.copy:
            route = add_route(out, fmt, kind, s, options.audio, options.subtitles, report,
                              opening=segments is not None)
            if route is not None:
                routes[s.index] = route
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
        chapters = clipped_chapters(source.chapters(), plan.origin, plan.start, plan.end)
        if chapters:
            if fmt in CHAPTER_FORMATS:
                out.set_chapters(chapters)
            else:
                report.warnings.append(f"{len(chapters)} chapter(s) not kept: the {kind} container has none")
        if segments is None:
            return
        video_packets = _segment_packets(segments, stream, video.time_base)
        copied_packets = (p for p in copy_packets(source, plan, stats) if p.stream.index in routes)
        for packet in heapq.merge(video_packets, copied_packets, key=_packet_time):
            if packet.stream is stream:
                out.mux(packet)
            else:
                out.mux(routes[packet.stream.index].convert(packet))
        for route in routes.values():
            out.mux(route.flush())


def written_format(stream) -> str:
    """"H.264 High 10, yuv420p10le": what players will be asked to decode."""
    ctx = stream.codec_context
    name = {"h264": "H.264", "hevc": "HEVC", "vp9": "VP9", "av1": "AV1"}.get(ctx.name, ctx.name)
    return f"{name} {ctx.profile}, {ctx.pix_fmt}" if ctx.profile else f"{name}, {ctx.pix_fmt}"


def _packet_time(packet: av.Packet) -> Fraction:
    ts = packet.dts if packet.dts is not None else packet.pts
    return ts * packet.time_base


def _segment_packets(segments: list[tuple[Path, Path]], stream, time_base) -> Iterator[av.Packet]:
    """The encoded video, segment after segment, each packet given its exact recorded times (streamed: one
    packet in memory at a time)."""
    for video_path, times_path in segments:
        mismatch = VideoError(f"{video_path} does not match its recorded times; delete {video_path.parent} to "
                              f"start over")
        with av.open(str(video_path)) as segment:
            packets = (p for p in segment.demux(segment.streams.video[0]) if p.size)
            for pts, dts, duration in read_times(times_path):
                packet = next(packets, None)
                if packet is None:
                    raise mismatch
                packet.stream, packet.time_base = stream, time_base
                packet.pts, packet.dts, packet.duration = pts, dts, duration
                yield packet
            if next(packets, None) is not None:
                raise mismatch


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


def chroma_steps(pix_fmt: str) -> tuple[int, int]:
    """Luma pixels per chroma sample across and down: (2, 2) for 4:2:0, (2, 1) for 4:2:2, (1, 1) for 4:4:4 and
    RGB; a frame's sides must be multiples of them."""
    fmt, probe = av.VideoFormat(pix_fmt), 1 << 12
    return probe // fmt.chroma_width(probe), probe // fmt.chroma_height(probe)


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


class FramesSink:
    """Numbered PNG frames, each written atomically (images.write_image), 16-bit sources kept 16-bit, and a
    Matroska v2 timestamps file (`timestamps.txt`, milliseconds per frame) so variable-rate timing can be
    rebuilt from them (mkvmerge --timestamps 0:timestamps.txt, or ffmpeg's concat demuxer). Each frame's time
    is appended to `.timestamps.partial` once its file is written, so a stopped run resumes after `done`
    frames (`frames_done`)."""

    def __init__(self, folder: Path, time_base: Fraction, done: int = 0) -> None:
        self.folder, self.index, self.time_base = folder, done, time_base
        partial = folder / PARTIAL_TIMESTAMPS
        kept = partial.read_text().splitlines()[:done] if done else []
        partial.write_text("".join(f"{line}\n" for line in kept))
        self.times = open(partial, "a")

    def frame(self, item: Frame) -> None:
        self.index += 1
        write_image(self.folder / f"frame_{self.index:06d}.png", item.pixels, format="PNG")
        self.times.write(f"{float(item.pts * self.time_base * 1000):.3f}".rstrip("0").rstrip(".") + "\n")
        self.times.flush()

    def finish(self) -> None:
        self.times.close()
        partial = self.folder / PARTIAL_TIMESTAMPS
        write_atomically(self.folder / TIMESTAMPS, ("# timestamp format v2\n" + partial.read_text()).encode())
        partial.unlink()

    def close(self) -> None:
        self.times.close()


def frames_done(folder: Path) -> int:
    """Frames a stopped --frames-out run finished: numbered files from the first on whose times were kept."""
    partial = folder / PARTIAL_TIMESTAMPS
    timed = len(partial.read_text().splitlines()) if partial.is_file() else 0
    done = 0
    while done < timed and (folder / f"frame_{done + 1:06d}.png").is_file():
        done += 1
    return done


def display_matrix(frame: av.VideoFrame) -> list[int] | None:
    """The frame's 3x3 display matrix (rotation and flips, FFmpeg's layout), or None when upright."""
    for data in frame.side_data:
        if data.type.name == "DISPLAYMATRIX":
            matrix = list(struct.unpack("<9i", bytes(data)[:36]))
            return None if matrix == [65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30] else matrix
    return None


def clipped_chapters(chapters: list[dict], origin: Fraction, start: Fraction | None,
                     end: Fraction | None) -> list[dict]:
    """Chapters shifted like the streams (the file's start, then `start`, becomes zero) and clipped to
    [start, end), times the user gives being relative to the file's start (`origin`)."""
    kept = []
    for ch in chapters:
        tb = ch["time_base"]
        lo, hi = ch["start"] * tb - origin, ch["end"] * tb - origin
        lo, hi = max(lo, start or 0), min(hi, end) if end is not None else hi
        if hi <= lo:
            continue
        offset = start or 0
        kept.append({"id": ch["id"], "time_base": tb, "metadata": dict(ch["metadata"]),
                     "start": round((lo - offset) / tb), "end": round((hi - offset) / tb)})
    return kept
