"""rich progress displays and summaries; the library itself only calls plain callbacks."""

from __future__ import annotations

import contextlib
from typing import Iterator

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

console = Console(stderr=True, soft_wrap=True)  # a message stays one line, whatever the width


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False)


@contextlib.contextmanager
def image_progress(total_files: int, quiet: bool) -> Iterator[dict]:
    """Callbacks for batch.run_jobs that drive a files bar and a tiles bar (or nothing, when quiet)."""
    if quiet or total_files == 0:
        yield {}
        return
    with _progress() as progress:
        files = progress.add_task("files", total=total_files, rate="")
        tiles = progress.add_task("tiles", total=1, rate="")

        def on_start(job) -> None:
            progress.update(files, description=f"[bold]{job.source.name}")
            progress.reset(tiles, total=1)

        def on_tile(done: int, total: int) -> None:
            progress.update(tiles, completed=done, total=total)

        def on_done(job, error) -> None:
            progress.advance(files)
            speed = progress.tasks[files].speed
            progress.update(files, rate=f"{speed:.2f} files/s" if speed else "")

        yield {"on_start": on_start, "on_tile": on_tile, "on_done": on_done}
        progress.update(files, description="files")


def print_image_summary(summary: dict) -> None:
    done, skipped, failed = len(summary["done"]), len(summary["skipped"]), len(summary["failed"])
    colour = "red" if failed else "green"
    factor = f"x{summary['outscale']:g}"  # the factor the outputs have, and how, where a resize made it
    if summary["outscale"] != summary["scale"]:
        factor += f" (x{summary['scale']} by {summary['model']}, then a resize)"
    line = f"[{colour}]upscaled {done} file(s) {factor} on {summary['device']} in {summary['seconds']:.1f}s[/]"
    if skipped:
        line += f"; {skipped} skipped (output exists; --overwrite redoes it)"
    if failed:
        line += f"; [red]{failed} failed[/]"
    console.print(line)


def print_scores(scores, upscaler, per_image: bool, factor: int | None = None) -> None:
    """One table per data set: PSNR/SSIM of the model and of bicubic, and seconds per image."""
    from rich.table import Table

    name = upscaler.config.get("name", "model")
    route = f"x{upscaler.scale}" if not factor or factor == upscaler.scale else f"x{factor} by x{upscaler.scale} and a resize"
    for dataset in scores:
        table = Table(title=f"{dataset.name} {route}: {name} on {upscaler.device}", title_justify="left")
        for column in ("image", "PSNR", "SSIM", "bicubic PSNR", "bicubic SSIM", "s/image"):
            table.add_column(column, justify="left" if column == "image" else "right")
        rows = dataset.images if per_image else []
        for row in rows:
            table.add_row(row.name, f"{row.psnr:.2f}", f"{row.ssim:.4f}", f"{row.bicubic_psnr:.2f}",
                          f"{row.bicubic_ssim:.4f}", f"{row.seconds:.3f}")
        table.add_row(f"[bold]mean of {len(dataset.images)}", f"[bold]{dataset.mean('psnr'):.2f}",
                      f"[bold]{dataset.mean('ssim'):.4f}", f"{dataset.mean('bicubic_psnr'):.2f}",
                      f"{dataset.mean('bicubic_ssim'):.4f}", f"{dataset.mean('seconds'):.3f}")
        print_table(table)


def print_table(table) -> None:
    """A result table on stdout. Into a file or a pipe it is printed at its full width: there is no edge to fit
    there, and the 80 columns rich assumes cut model names ("trinas-x…" named no model in a recorded bench)."""
    out = Console()
    if not out.is_terminal:
        out = Console(width=max(out.width, out.measure(table, options=out.options.update_width(10_000)).maximum))
    out.print(table)


def print_bench(result: dict) -> None:
    from rich.table import Table

    table = Table(title=f"{result['model']} x{result['scale']} on {result['device']} ({result['precision']}, "
                        f"{result['threads']} threads), input {result['input']}, tile {result['tile']}",
                  title_justify="left")
    reference = result["reference"]
    peak = reference["conv_gflops"]
    inputs = len({row.get("input") for row in result["rows"]}) > 1  # models of several scales, one output frame
    columns = ("variant", *(("input",) if inputs else ()), "ms/image", "images/s", "output MP/s", "GFLOP/s",
               "of conv peak", "speed vs first")
    for column in columns:
        table.add_column(column, justify="left" if column in ("variant", "input") else "right")
    for row in result["rows"]:
        gflops = row.get("gflops")
        table.add_row(row["name"], *((row["input"],) if inputs else ()), f"{row['seconds'] * 1000:.1f}",
                      f"{row['fps']:.2f}", f"{row['megapixels_per_s']:.2f}", f"{gflops:.1f}" if gflops else "-",
                      f"{gflops / peak:.0%}" if gflops else "-", f"{row['ratio']:.2f}x")
    print_table(table)
    Console(soft_wrap=True).print(f"same run: a plain 3x3 conv at width {reference['conv_width']} on the input size reaches "
                    f"{peak:.1f} GFLOP/s; OpenCV bicubic takes {reference['bicubic_seconds'] * 1000:.1f} ms/image")
    Console(soft_wrap=True).print(f"peak memory: {result['peak_memory_mb']:.0f} MB")
