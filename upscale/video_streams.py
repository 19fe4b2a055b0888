"""The input's audio and subtitle streams in the output: copied untouched, converted where the container
cannot hold them (or when asked), or left out.

A WebM holds only Opus or Vorbis sound and WebVTT text; an MP4 holds no SubRip or ASS. Dropping such a
stream leaves a silent film, so by default it is converted instead (AAC to Opus for WebM, SubRip/ASS to
mov_text for MP4, ...) and the report says so in one line. Bitmap subtitles (DVD, Blu-ray) cannot become
text and are left out with a warning.
"""

from __future__ import annotations

from fractions import Fraction

import av

from .video_types import VideoError, VideoReport, reason

# What a converted stream becomes, by output format (FFmpeg muxer names); other formats: AAC and SubRip.
AUDIO_CODEC = {"webm": "libopus", "ogg": "libopus"}
TEXT_CODEC = {"mp4": "mov_text", "mov": "mov_text", "ipod": "mov_text", "3gp": "mov_text", "3g2": "mov_text",
              "webm": "webvtt", "matroska": "subrip"}
TEXT_SUBTITLES = {"subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text"}
# Tags the muxer writes itself; copying the input's would be stale or wrong.
SKIP_TAGS = {"encoder", "major_brand", "minor_version", "compatible_brands", "duration",
             "number_of_frames", "number_of_bytes", "bps", "_statistics_tags", "_statistics_writing_app",
             "_statistics_writing_date_utc"}


class Route:
    """One input stream's way into the output: its packets in, the output's packets out. A copy needs only the
    output stream; a conversion also decodes with the input stream's `decoder`."""

    def __init__(self, stream, decoder=None) -> None:
        self.stream, self.decoder = stream, decoder

    def convert(self, packet: av.Packet) -> list[av.Packet]:
        packet.stream = self.stream
        return [packet]

    def flush(self) -> list[av.Packet]:
        return []


class AudioConversion(Route):
    """Decode, then encode with the output's codec (PyAV resamples to what the encoder takes)."""

    def convert(self, packet: av.Packet) -> list[av.Packet]:
        try:
            frames = self.decoder.decode(packet)
        except av.error.InvalidDataError:
            return []  # a damaged audio packet: a moment of silence, as a player would give
        return [p for frame in frames for p in self.stream.encode(frame)]

    def flush(self) -> list[av.Packet]:
        frames = self.decoder.decode(None)
        return [p for frame in frames for p in self.stream.encode(frame)] + list(self.stream.encode(None))


class SubtitleConversion(Route):
    """Decode each text subtitle and encode it in the output's text format, at the same time."""

    def convert(self, packet: av.Packet) -> list[av.Packet]:
        try:
            subtitle = self.decoder.decode2(packet)
        except av.error.InvalidDataError:
            return []
        if subtitle is None:
            return []
        out = self.stream.codec_context.encode_subtitle(subtitle)
        out.stream, out.time_base = self.stream, packet.time_base
        out.pts = out.dts = packet.pts
        out.duration = packet.duration
        return [out]


def add_route(out, fmt: str, kind: str, source_stream, audio: str, subtitles: str, report: VideoReport,
              opening: bool) -> Route | None:
    """The output stream for `source_stream` as the policies ask (None: left out, the report says why).
    `opening`: the file will be written, so converters are opened too (a container check only lays out)."""
    s = source_stream
    name = s.codec_context.name if s.codec_context else "?"
    label = f"{s.type} #{s.index} ({name})"
    policy = audio if s.type == "audio" else subtitles
    if policy == "none":
        return None
    if policy == "copy":
        try:
            copied = out.add_stream_from_template(s)
        except ValueError:
            copied = None
        if copied is not None:
            _describe(copied, s)
            report.copied.append(label)
            return Route(copied)
    why = f" (the {kind} container cannot hold {name})" if policy == "copy" else ""
    if s.type == "audio":
        return _audio_conversion(out, fmt, kind, s, label, why, report)
    return _subtitle_conversion(out, fmt, kind, s, label, why, report, opening)


def _audio_conversion(out, fmt, kind, s, label, why, report) -> Route | None:
    codec = AUDIO_CODEC.get(fmt, "aac")
    try:
        encoder = av.Codec(codec, "w")
        rates = encoder.audio_rates or []
        rate = s.rate if not rates or s.rate in rates else max(rates)
        stream = out.add_stream(codec, rate=rate)
        stream.layout = s.layout.name if s.layout.nb_channels <= 2 else s.layout
    except (ValueError, av.error.FFmpegError) as exc:
        report.warnings.append(f"{label} not kept: the {kind} container cannot hold it and converting it to "
                               f"{codec} failed ({reason(exc)}); use .mkv to keep it")
        return None
    _describe(stream, s)
    report.converted.append(f"{label} converted to {encoder.name}{why}")
    return AudioConversion(stream, s.codec_context)


def _subtitle_conversion(out, fmt, kind, s, label, why, report, opening) -> Route | None:
    name = s.codec_context.name if s.codec_context else "?"
    codec = TEXT_CODEC.get(fmt)
    if name not in TEXT_SUBTITLES or codec is None:
        why = "they are pictures, not text" if name not in TEXT_SUBTITLES else "it has no text subtitle format"
        report.warnings.append(f"{label} not kept: the {kind} container cannot hold it and {why}; "
                               f"use .mkv to keep it")
        return None
    try:
        stream = out.add_stream(codec)
        stream.time_base = s.time_base
        if opening:  # the encoder needs the style header, which the decoder makes when it opens
            s.codec_context.open()
            ctx = stream.codec_context
            ctx.subtitle_header = s.codec_context.subtitle_header
            ctx.time_base = s.time_base or Fraction(1, 1000)
            ctx.open()
    except (ValueError, av.error.FFmpegError) as exc:
        raise VideoError(f"cannot convert {label} to {codec}: {reason(exc)}; try --subtitles none") from None
    _describe(stream, s)
    report.converted.append(f"{label} converted to {codec}{why}")
    return SubtitleConversion(stream, s.codec_context)


def tags_to_copy(metadata: dict) -> dict:
    return {k: v for k, v in metadata.items() if k.lower() not in SKIP_TAGS}


def _describe(stream, source_stream) -> None:
    stream.metadata.update(tags_to_copy(source_stream.metadata))
    stream.disposition = int(source_stream.disposition)
