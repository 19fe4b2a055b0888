"""The `upscale` command line: thin click commands over the library, rendered with rich.

Every command turns known errors into one red line and a non-zero exit; `--debug` shows tracebacks.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import torch
from rich.console import Console
from rich.markup import escape

from .batch import OutputOptions, plan_jobs, run_jobs
from .bench import bench, peak_memory_mb, set_memory_format
from .errors import friendly_errors
from .evaluation import evaluate, record_metrics, summary
from .images import DEFAULT_MAX_PIXELS
from .options import build_upscaler, engine_options
from .progress import image_progress, print_bench, print_image_summary, print_scores

console = Console(stderr=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="trinas-upscale")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.option("--offline", is_flag=True, help="Use Hub models from the local cache only (sets HF_HUB_OFFLINE=1).")
@click.pass_context
def main(ctx: click.Context, debug: bool, offline: bool) -> None:
    """Upscale images and videos with networks found by trilevel architecture search."""
    ctx.obj = {"debug": debug, "offline": offline}
    if offline:  # every command that resolves a model sees HF_HUB_OFFLINE=1 until this invocation ends
        from .hub import offline_mode

        ctx.with_resource(offline_mode())


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Output file (one input) or folder.")
@engine_options
@click.option("--outscale", type=click.FloatRange(min=0, min_open=True),
              help="Final factor: the model, then a high-quality resize (any value, e.g. 1.5 or 3).")
@click.option("--suffix", help="Added to output names [default: _xN beside the input, none in -o folder].")
@click.option("--format", "fmt", type=click.Choice(["png", "jpg", "webp", "tiff", "bmp"], case_sensitive=False),
              help="Output format [default: the input's].")
@click.option("--quality", type=click.IntRange(1, 100), default=95, show_default=True, help="JPEG/WebP quality.")
@click.option("--overwrite", is_flag=True, help="Redo outputs that exist (default: skip them).")
@click.option("--max-pixels", type=click.IntRange(1), default=DEFAULT_MAX_PIXELS, show_default=True,
              help="Refuse images larger than this (decompression-bomb guard).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout.")
@click.pass_context
def image(ctx, inputs, output, model_spec, scale, device, precision, tile, tile_pad, outscale, suffix, fmt,
          quality, overwrite, max_pixels, quiet, as_json):
    """Upscale image files, folders (recursively) and globs."""
    with friendly_errors(ctx.obj["debug"]):
        upscaler = build_upscaler(model_spec, scale, device, precision, tile, tile_pad)
        options = OutputOptions(output, suffix, fmt, overwrite)
        plan = plan_jobs(list(inputs), options, upscaler.scale)
        with image_progress(len(plan.jobs), quiet or as_json) as hooks:
            report = run_jobs(plan.jobs, upscaler, outscale, quality, max_pixels, **hooks)
        failures = plan.failures + report.failures
        summary = {"done": [str(j.target) for j in report.done], "skipped": [str(j.target) for j in plan.skipped],
                   "failed": [{"path": f.path, "error": f.error} for f in failures],
                   "seconds": round(report.seconds, 3), "model": upscaler.config.get("name"),
                   "scale": upscaler.scale, "device": str(upscaler.device)}
        if as_json:
            click.echo(json.dumps(summary, indent=2))
        elif not quiet:
            print_image_summary(summary)
        for failure in failures:
            if not as_json:
                console.print(f"[red]error:[/] {escape(failure.error)}")
        if failures:
            sys.exit(1)


@main.command("eval")
@engine_options
@click.option("--data", "-d", "folders", multiple=True, required=True, type=click.Path(path_type=Path),
              help="Folder of HR benchmark images (repeatable), e.g. DATA/val/Set5.")
@click.option("--per-image", is_flag=True, help="A row for every image, not only the means.")
@click.option("--record", is_flag=True, help="Store the means in the model folder's config.json and card.")
@click.option("--json", "as_json", is_flag=True, help="Print the means as JSON on stdout.")
@click.pass_context
def eval_command(ctx, model_spec, scale, device, precision, tile, tile_pad, folders, per_image, record, as_json):
    """PSNR/SSIM (Y channel, MATLAB bicubic LR, border cut) with bicubic beside it."""
    with friendly_errors(ctx.obj["debug"]):
        upscaler = build_upscaler(model_spec, scale, device, precision, tile, tile_pad)
        scores = evaluate(upscaler, list(folders))
        means = summary(scores)
        if record:
            record_metrics(model_spec or upscaler.config.get("name"), means)
        if as_json:
            click.echo(json.dumps(means, indent=2))
        else:
            print_scores(scores, upscaler, per_image)


@main.command("bench")
@engine_options
@click.option("--size", default="256x256", show_default=True, metavar="WxH", help="Input image size.")
@click.option("--repeats", type=click.IntRange(1), default=5, show_default=True, help="Timed runs per round.")
@click.option("--rounds", type=click.IntRange(1), default=3, show_default=True, help="Interleaved rounds.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON on stdout.")
@click.pass_context
def bench_command(ctx, model_spec, scale, device, precision, tile, tile_pad, size, repeats, rounds, as_json):
    """Engine throughput: contiguous vs channels-last memory layout, measured in the same run."""
    with friendly_errors(ctx.obj["debug"]):
        width, height = parse_size(size)
        upscaler = build_upscaler(model_spec, scale, device, precision, tile, tile_pad)
        variants = {"contiguous": lambda up: set_memory_format(up, False),
                    "channels-last": lambda up: set_memory_format(up, True)}
        rows = bench(upscaler, height, width, repeats, rounds, variants)
        result = {"model": upscaler.config.get("name"), "device": str(upscaler.device),
                  "precision": str(upscaler.dtype).replace("torch.", ""), "threads": torch.get_num_threads(),
                  "input": f"{width}x{height}", "tile": upscaler.tile, "scale": upscaler.scale,
                  "peak_memory_mb": round(peak_memory_mb(upscaler.device), 1),
                  "rows": [row.__dict__ for row in rows]}
        if as_json:
            click.echo(json.dumps(result, indent=2))
        else:
            print_bench(result)


@main.group()
def models() -> None:
    """List, inspect, pre-fetch and publish models: packaged names, folders, hf:owner/repo[@revision]."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
@click.pass_context
def models_list(ctx, as_json):
    """Packaged models and Hub models in the local cache, with scale, parameters and PSNR."""
    with friendly_errors(ctx.obj["debug"]):
        from .hub import list_models

        entries = list_models()
        if as_json:
            click.echo(json.dumps([e.to_dict() for e in entries], indent=2))
        else:
            Console().print(_models_table(entries))


@models.command("info")
@click.argument("spec")
@click.option("--json", "as_json", is_flag=True, help="Print the entry and config.json on stdout.")
@click.pass_context
def models_info(ctx, spec, as_json):
    """Show a model's numbers, its Hub record and its model card."""
    with friendly_errors(ctx.obj["debug"]):
        from .hub import describe

        entry, config, card = describe(spec)
        if as_json:
            click.echo(json.dumps({**entry.to_dict(), "config": config}, indent=2))
        else:
            _print_model_info(entry, card)


@models.command("pull")
@click.argument("spec")
@click.option("--json", "as_json", is_flag=True, help="Print the cached entry as JSON on stdout.")
@click.pass_context
def models_pull(ctx, spec, as_json):
    """Download hf:owner/repo[@revision] into the Hugging Face cache (verified), for later offline use."""
    with friendly_errors(ctx.obj["debug"]):
        from .hub import pull

        entry = pull(spec)
        if as_json:
            click.echo(json.dumps(entry.to_dict(), indent=2))
        else:
            Console().print(f"[green]cached[/] {escape(entry.hub)} x{entry.scale} in {escape(str(entry.folder))}")


@models.command("push")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--repo", required=True, metavar="OWNER/NAME", help="Hub repository to publish to (created if new).")
@click.option("--private", is_flag=True, help="Create the repository private.")
@click.option("--message", "-m", help="Commit message.")
@click.option("--json", "as_json", is_flag=True, help="Print the commit as JSON on stdout.")
@click.pass_context
def models_push(ctx, folder, repo, private, message, as_json):
    """Publish a model folder (e.g. a search result); the card is generated from config.json. Token: HF_TOKEN or
    `hf auth login`."""
    with friendly_errors(ctx.obj["debug"]):
        from .hub import push

        result = push(folder, repo, private=private, message=message)
        if as_json:
            click.echo(json.dumps(result.__dict__, indent=2))
        else:
            Console().print(f"[green]pushed[/] {', '.join(result.files)} -> {escape(result.url)}")


def _models_table(entries):
    from rich.table import Table

    table = Table("model", "source", "scale", "params", "PSNR (dB)", "hub")
    for e in entries:
        psnr = ", ".join(f"{name} {value:.2f}" for name, value in e.psnr.items()) or "-"
        table.add_row(escape(e.spec), e.source, f"x{e.scale}", f"{e.params:,}", psnr, escape(e.hub or "-"))
    return table


def _print_model_info(entry, card):
    from rich.markdown import Markdown
    from rich.table import Table

    from .hub import default_repo

    hub = entry.hub or (f"no hub record (publish as hf:{default_repo(entry.name)})" if entry.source == "packaged"
                        else "-")
    table = Table(show_header=False, box=None)
    for key, value in [("model", entry.spec), ("source", entry.source), ("folder", str(entry.folder)),
                       ("scale", f"x{entry.scale}"), ("params", f"{entry.params:,}"), ("hub", hub)]:
        table.add_row(key, escape(value))
    out = Console()
    out.print(table)
    out.print(Markdown(card.split("\n---\n", 1)[-1] if card.startswith("---") else card))


def parse_size(size: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{size!r} is not WxH, e.g. 640x480", param_hint="--size") from None
    if width < 1 or height < 1:
        raise click.BadParameter("width and height must be positive", param_hint="--size")
    return width, height


if __name__ == "__main__":
    sys.exit(main())
