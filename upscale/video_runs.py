"""What `upscale video` does once its options are read: one video, numbered frames, or a batch of videos,
with progress, the report's lines and the hint to --resume after a stop. Imported when the command runs
(PyAV loads with it)."""

from __future__ import annotations

import contextlib
import math
import sys
import traceback
from pathlib import Path

from rich.markup import escape

from . import video
from .batch import VIDEOS, Failure, OutputOptions, plan_jobs
from .errors import UpscaleError
from .options import build_upscaler
from .progress import console
from .video import check_targets, upscale_frames
from .video_output import frames_done


def to_frames(src: Path, folder: Path, engine: dict, options, quiet: bool) -> None:
    check_targets(src, None, folder, options.overwrite or options.resume)  # before the model loads
    upscaler = build_upscaler(**engine, outscale=options.outscale)
    try:
        with progress_bar(quiet) as on_progress:
            report = upscale_frames(src, folder, upscaler, options, progress=on_progress)
    except KeyboardInterrupt:
        done = frames_done(folder)
        if done:
            console.print(f"the first {done} frames are in {folder}; run the same command with --resume to "
                          f"continue", highlight=False)
        raise
    print_report(report, upscaler, options, folder)


def one_video(src: Path, output: Path, engine: dict, options, quiet: bool) -> None:
    check_targets(src, output, None, options.overwrite)  # before the model loads: a path error costs nothing
    upscaler = build_upscaler(**engine, outscale=options.outscale)
    print_report(run_video(src, output, upscaler, options, quiet), upscaler, options, output)


def run_video(src: Path, output: Path, upscaler, options, quiet: bool):
    try:
        with progress_bar(quiet) as on_progress:
            return video.upscale_video(src, output, upscaler, options, progress=on_progress)
    except KeyboardInterrupt:  # Ctrl-C and SIGTERM: say how to go on before the one-line stop message
        if video.kept_frames(output):
            console.print(f"the first {video.kept_frames(output)} frames of {output} are kept; run the same "
                          f"command with --resume to continue", highlight=False)
        raise


def many_videos(sources: list[str], output: Path | None, fmt: str | None, engine: dict, options, quiet: bool,
                debug: bool) -> None:
    """Several videos, folders and globs: names mirrored like `upscale image`, finished outputs skipped, one
    failure never stops the others, and every failure listed at the end (exit 1)."""
    upscaler = build_upscaler(**engine, outscale=options.outscale)
    plan = plan_jobs(sources, OutputOptions(output, None, fmt, options.overwrite), options.outscale or upscaler.scale,
                     VIDEOS)
    failures = list(plan.failures)
    done = 0
    for number, job in enumerate(plan.jobs, 1):
        console.print(f"[bold]{number}/{len(plan.jobs)}[/] {escape(str(job.source))} -> {escape(str(job.target))}")
        try:
            check_targets(job.source, job.target, None, options.overwrite)
            report = run_video(job.source, job.target, upscaler, options, quiet)
        except (UpscaleError, OSError) as exc:  # a user error, or what the disk refuses: the next video goes on
            failures.append(Failure(str(job.source), f"{job.source}: {str(exc).strip().splitlines()[0]}", exc))
            console.print(f"[red]error:[/] {escape(failures[-1].error)}")
            continue
        print_report(report, upscaler, options, job.target)
        done += 1
    line = f"[{'red' if failures else 'green'}]upscaled {done} video(s)[/]"
    if plan.skipped:
        line += f"; {len(plan.skipped)} skipped (output exists; --overwrite redoes it)"
    console.print(line + (f"; [red]{len(failures)} failed:[/]" if failures else ""))
    for failure in failures:
        console.print(f"[red]error:[/] {escape(failure.error)}")
        if debug and failure.exception is not None:
            console.print(escape("".join(traceback.format_exception(failure.exception))), end="")
    if failures:
        sys.exit(1)


def print_report(report, upscaler, options, target: Path) -> None:
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}")
    for line in report.converted:
        console.print(f"note: {escape(line)}", highlight=False)
    if report.video_format:
        plain = options.compat or report.video_format.endswith(", yuv420p")
        hint = "" if plain else " (--compat: 8-bit 4:2:0 for every player)"
        console.print(f"video: {report.video_format}{hint}", highlight=False)
    resumed = f" (continued after {report.resumed_after} frames)" if report.resumed_after else ""
    resized = options.outscale and not math.isclose(options.outscale, upscaler.scale)
    factor = f"x{options.outscale:g} (x{upscaler.scale} and a resize)" if resized else f"x{upscaler.scale}"
    console.print(f"[green]upscaled {report.frames} frames {factor} on {upscaler.device} in "
                  f"{report.seconds:.1f}s ({report.fps:.1f} frames/s){resumed}[/] -> {escape(str(target))}")


@contextlib.contextmanager
def progress_bar(quiet: bool):
    """A frames bar (done of total, or of the estimate when the container has no count), frames/s and ETA;
    it appears with the first frame, so a bad input shows only its error line."""
    if quiet:
        yield None
        return
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                        console=console)
    task = progress.add_task("frames", total=None, rate="", start=False)

    def on_progress(done: int, total: int | None) -> None:
        if not progress.tasks[task].started:
            progress.start()
            progress.start_task(task)
        speed = progress.tasks[task].speed
        progress.update(task, completed=done, total=None if total is None else max(total, done),
                        rate=f"{speed:.1f} fps" if speed else "")

    try:
        yield on_progress
    finally:
        progress.stop()
