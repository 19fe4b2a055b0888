"""Files, folders and globs -> upscaling jobs (of images or of videos), and running image jobs with
per-file error handling.

Folders are walked recursively and mirrored into the output folder; files of another kind are ignored
there. A failing file never stops the run: it is recorded, and the caller reports every failure.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .engine import EngineError, Upscaler
from .errors import UpscaleError
from .images import ImageError, LoadedImage, is_image_path, read_image, write_image

FORMAT_SUFFIX = {"png": ".png", "jpg": ".jpg", "jpeg": ".jpg", "webp": ".webp", "tiff": ".tif", "tif": ".tif",
                 "bmp": ".bmp"}
VIDEO_FORMAT_SUFFIX = {"mkv": ".mkv", "mp4": ".mp4", "mov": ".mov", "webm": ".webm"}
# Videos we read when walking folders; one named explicitly may be anything FFmpeg reads.
VIDEO_SUFFIXES = {".mkv", ".mp4", ".m4v", ".mov", ".webm", ".avi", ".ts", ".m2ts", ".mts", ".mpg", ".mpeg",
                  ".wmv", ".flv", ".3gp", ".ogv", ".mxf", ".vob"}


@dataclass(frozen=True)
class Media:
    """What a batch is made of: which files are inputs, and what the outputs are written as."""

    noun: str
    is_input: Callable[[Path], bool]   # when walking folders and globs
    writes: Callable[[Path], bool]     # an output extension this tool writes
    formats: dict[str, str]            # --format -> extension
    fallback: str | None = None        # the extension of an output whose input's extension is not written

    def extension_for(self, source: Path, format: str | None) -> str:
        """--format's extension, else the input's own when this tool writes it, else the fallback."""
        if format:
            return self.formats[format.lower()]
        return source.suffix if self.fallback is None or self.writes(source) else self.fallback


def _is_video_path(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def _writes_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_FORMAT_SUFFIX.values()


IMAGES = Media("image", is_image_path, is_image_path, FORMAT_SUFFIX)
VIDEOS = Media("video", _is_video_path, _writes_video, VIDEO_FORMAT_SUFFIX, fallback=".mkv")


@dataclass
class Job:
    source: Path
    target: Path


@dataclass
class Failure:
    path: str
    error: str  # one line for the user
    exception: BaseException | None = field(default=None, repr=False, compare=False)  # for --debug


@dataclass
class Plan:
    jobs: list[Job] = field(default_factory=list)
    skipped: list[Job] = field(default_factory=list)  # output exists and --overwrite not given
    failures: list[Failure] = field(default_factory=list)


@dataclass
class OutputOptions:
    output: Path | None = None  # a file (single input) or a folder; None: beside each input
    suffix: str | None = None  # added to the stem; default "_x{scale}" beside inputs, "" in a folder
    format: str | None = None  # png, jpg, webp, tiff, bmp; default: keep the input's
    overwrite: bool = False


def _hidden(path: Path, root: Path | None) -> bool:
    """A hidden file or one in a hidden folder below `root` (dot files, AppleDouble `._*`, and our own
    `.NAME.tmp` files of an interrupted run): never an input when a folder or glob is walked."""
    parts = path.relative_to(root).parts if root is not None else (path.name,)
    return any(part.startswith(".") for part in parts)


def _glob_root(pattern: str) -> tuple[Path, str]:
    """Split a glob into the folder before its first wildcard and the pattern below it."""
    parts = Path(pattern).expanduser().parts
    magic = next(i for i, part in enumerate(parts) if any(ch in part for ch in "*?["))
    root = Path(*parts[:magic]) if magic else Path(".")
    return root, str(Path(*parts[magic:]))


def _expand(item: str, media: Media) -> tuple[list[tuple[Path, Path | None]], str | None]:
    """(file, folder it was found in) pairs for one input argument, or an error message.

    Folders and globs are walked without following symbolic links to folders (a link loop would never end),
    skip hidden files, and keep the folder the walk started from, so outputs mirror the tree. An argument
    that holds no input is an error, whether a folder or a glob (one rule)."""
    path = Path(item).expanduser()
    wanted = media.is_input
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and wanted(p) and not _hidden(p, path))
        return [(p, path) for p in files], None if files else f"{item}: no {media.noun}s in this folder"
    if path.is_file():
        return [(path, None)], None
    if any(ch in item for ch in "*?["):
        root, pattern = _glob_root(item)
        matches = sorted(root.glob(pattern)) if root.is_dir() else []
        files = [p for p in matches if p.is_file() and wanted(p) and not _hidden(p, root)]
        return [(p, root) for p in files], None if files else f"{item}: no {media.noun} matches this pattern"
    return [], f"{item}: no such file or folder"


def _check_output(options: OutputOptions, media: Media) -> None:
    """An output file must have an extension this tool writes, and agree with --format."""
    out = options.output
    if out is None or out.is_dir() or not out.suffix:
        return  # a folder (existing, or a name without extension)
    if not media.writes(out):
        raise UpscaleError(f"-o {out}: {out.suffix} is not a format this tool writes "
                           f"(use {', '.join(sorted(set(media.formats.values())))}, or a folder)")
    formats = media.formats
    if options.format and formats[options.format.lower()] != formats.get(out.suffix.lower()[1:], out.suffix.lower()):
        raise UpscaleError(f"--format {options.format} disagrees with -o {out}: give one or make them match")


def _target_for(source: Path, root: Path | None, options: OutputOptions, scale: float, single: bool,
                media: Media) -> Path:
    suffix = options.suffix
    extension = media.extension_for(source, options.format)
    out = options.output
    if out is not None and single and media.writes(out) and not out.is_dir():
        return out  # an explicit output file for a single input
    if out is None:
        name = f"{source.stem}{f'_x{scale:g}' if suffix is None else suffix}{extension}"
        return source.with_name(name)
    relative = source.relative_to(root).parent if root is not None else Path()
    return out / relative / f"{source.stem}{suffix or ''}{extension}"


def plan_jobs(inputs: list[str], options: OutputOptions, scale: float, media: Media = IMAGES) -> Plan:
    """Every job the inputs ask for; missing inputs, clashes and would-be overwrites of inputs are failures.
    `scale` is the factor the outputs really have (an --outscale, else the model's), which default names carry."""
    if options.format and options.format.lower() not in media.formats:
        raise UpscaleError(f"unknown --format {options.format!r} (use {', '.join(sorted(set(media.formats)))})")
    suffix = options.suffix
    if suffix and (any(sep in suffix for sep in ("/", "\\", os.sep, os.altsep or "/", "\0"))
                   or suffix.strip(".") == ""):
        raise UpscaleError(f"--suffix {suffix!r} must be part of a file name (no folders, no '/', '\\' or '..')")
    plan = Plan()
    found: list[tuple[Path, Path | None]] = []
    for item in inputs:
        files, error = _expand(item, media)
        if error:
            plan.failures.append(Failure(item, error))
        found += files
    single = len(found) == 1 and len(inputs) == 1
    _check_output(options, media)
    if options.output is not None and not single and media.writes(options.output) \
            and not options.output.is_dir():
        raise UpscaleError(f"-o {options.output} looks like a file, but there are {len(found)} inputs: give a folder")
    unique: dict[Path, tuple[Path, Path | None]] = {}
    for source, root in found:  # the same file named twice (as a file and in a folder) runs once
        unique.setdefault(source.resolve(), (source, root))
    # Outputs are never inputs: not the output folder's contents (when it lies inside an input folder), and not
    # a file that is another input's output (`base_x2.png` beside `base.png`), so a second run skips them all.
    out_folder = options.output.resolve() if options.output is not None and not single else None
    output_of = {_target_for(s, r, options, scale, single, media).resolve(): key for key, (s, r) in unique.items()}
    unique = {key: value for key, value in unique.items()
              if not (out_folder is not None and key.is_relative_to(out_folder))
              and output_of.get(key, key) == key}
    found = list(unique.values())
    sources = set(unique)
    taken: dict[Path, Path] = {}
    for source, root in found:
        target = _target_for(source, root, options, scale, single, media)
        resolved = target.resolve()
        if options.output is not None and not single and not resolved.is_relative_to(options.output.resolve()):
            plan.failures.append(Failure(str(source), f"{source}: output {target} would leave the output folder"))
        elif resolved in sources:
            plan.failures.append(Failure(str(source), f"{source}: output {target} is an input; refusing to "
                                                      "overwrite it (use -o or --suffix)"))
        elif resolved in taken:
            plan.failures.append(Failure(str(source), f"{source}: output {target} is also the output of "
                                                      f"{taken[resolved]}"))
        else:
            taken[resolved] = source
            (plan.jobs if options.overwrite or not target.exists() else plan.skipped).append(Job(source, target))
    return plan


@dataclass
class RunReport:
    done: list[Job] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # things the user should know about files that worked
    seconds: float = 0.0


OVERLAP_MAX_BYTES = 64 << 20  # outputs up to this size (an 8-bit 4K frame is 25 MB) overlap with the next image


def run_jobs(jobs: list[Job], upscaler: Upscaler, outscale: float | None = None, quality: int = 95,
             max_pixels: int | None = None, on_start: Callable[[Job], None] | None = None,
             on_tile: Callable[[int, int], None] | None = None,
             on_done: Callable[[Job, str | None], None] | None = None) -> RunReport:
    """Upscale every job; one job's error is recorded and the run goes on with the next.

    While the model runs on one image, the next file is read and the previous output written (and synced) on
    two helper threads, so a folder of frames goes at the model's pace rather than model + decode + encode;
    large outputs (over OVERLAP_MAX_BYTES) are finished before the next image starts, so at most one of them is
    held. Outputs are still written atomically, and Ctrl-C lets the write in flight finish.
    """
    report = RunReport()
    start = time.perf_counter()
    limits = {"max_pixels": max_pixels} if max_pixels else {}
    with ThreadPoolExecutor(1, thread_name_prefix="upscale-read") as reader, \
            ThreadPoolExecutor(1, thread_name_prefix="upscale-write") as writer:
        writing: tuple[Job, LoadedImage, Future] | None = None
        reading = reader.submit(read_image, jobs[0].source, **limits) if jobs else None

        def finish_writing() -> None:
            nonlocal writing
            if writing is not None:
                job, image, future = writing
                writing = None
                _record(report, job, image, _attempt(job, future.result)[1], on_done)

        for index, job in enumerate(jobs):
            if on_start:
                on_start(job)
            image, error = _attempt(job, reading.result)
            reading = None
            next_source = jobs[index + 1].source if index + 1 < len(jobs) else None
            factor = max(upscaler.scale, outscale or 0)
            small = image is not None and image.pixels.nbytes * factor**2 <= OVERLAP_MAX_BYTES
            if small and next_source is not None:
                reading = reader.submit(read_image, next_source, **limits)
            if not small:
                finish_writing()  # a large image starts with nothing else held
            if not error:
                pixels, error = _attempt(job, upscaler.upscale_array, image.pixels, outscale, on_tile)
            finish_writing()
            if error:
                _record(report, job, image, error, on_done)
            else:
                writing = (job, image, writer.submit(write_image, job.target, pixels, quality=quality,
                                                     icc_profile=image.icc_profile, exif=image.exif, dpi=image.dpi))
            if not small:
                finish_writing()
                if next_source is not None:
                    reading = reader.submit(read_image, next_source, **limits)
        finish_writing()
    report.seconds = time.perf_counter() - start
    return report


def _attempt(job: Job, work: Callable[..., Any], *args: Any) -> tuple[Any, tuple[str, BaseException] | None]:
    """(work(*args), None), or (None, (one line naming the file, the exception)) for an error a user can act on."""
    try:
        return work(*args), None
    except ImageError as exc:
        return None, (str(exc), exc)
    except (EngineError, UpscaleError) as exc:
        return None, (f"{job.source}: {exc}", exc)
    except OSError as exc:
        return None, (f"{job.target}: cannot write: {exc.strerror or exc}", exc)


def _record(report: RunReport, job: Job, image: LoadedImage | None, failure: tuple[str, BaseException] | None,
            on_done: Callable[[Job, str | None], None] | None) -> None:
    if failure:
        report.failures.append(Failure(str(job.source), failure[0].splitlines()[0], failure[1]))
    else:
        report.done.append(job)
        if image is not None and image.note:
            report.notes.append(image.note)
    if on_done:
        on_done(job, failure[0] if failure else None)
