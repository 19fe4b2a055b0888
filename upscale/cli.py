"""The `upscale` command line: thin click commands over the library, rendered with rich.

Every command turns known errors into one red line and a non-zero exit; `--debug` shows tracebacks.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import traceback
from pathlib import Path

import click
import torch
from rich.console import Console
from rich.markup import escape

from trinas.operations import OPERATIONS
from trinas.search_config import (BUDGET_MODES, PRUNE_CHANNEL_STEP, SEARCH_MAX_CELLS_UPSAMPLED, SEARCH_OPS,
                                  build_config)
from trinas.sparsestmax import BUDGET_GRADIENTS, RELAXATIONS
from trinas.supernet import DEFAULT_DEPTH_FINISH, DEPTH_FINISHES
from trinas.tiling import LATENCY_DEVICES

from .batch import VIDEO_FORMAT_SUFFIX, OutputOptions, plan_jobs, run_jobs
from .bench import bench, bench_models, peak_memory_mb
from .errors import UpscaleError, one_line_errors
from .evaluation import evaluate, summary
from .images import DEFAULT_MAX_PIXELS
from .invocation import typed_command
from .options import TTA_OPTION, build_upscaler, engine_options, parse_tile
from .policies import AUDIO_CHOICES, SUBTITLE_CHOICES
from .progress import console, image_progress, print_bench, print_image_summary, print_scores, print_table
from .records import check_recordable, record_metrics, record_speed, speed_entry



class _DebugAnywhere(click.Group):
    """`--debug` works before or after the subcommand (`upscale image x.png --debug`), and every command's
    failures become one line here (`errors.one_line_errors`)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--debug" in args[1:]:
            args = ["--debug", *(a for a in args if a != "--debug")]
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):
        """Every command runs inside the one place that turns failures into lines and exit codes."""
        with one_line_errors(bool(ctx.params.get("debug"))):
            return super().invoke(ctx)


@click.group(cls=_DebugAnywhere, context_settings={"help_option_names": ["-h", "--help"]})
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
@TTA_OPTION
@click.pass_context
def image(ctx, inputs, output, model_spec, scale, device, precision, tile, tile_pad, compiled, outscale, suffix, fmt,
          quality, overwrite, max_pixels, quiet, as_json, tta):
    """Upscale image files, folders (recursively) and globs."""
    upscaler = build_upscaler(model_spec, scale, device, precision, tile, tile_pad, compiled, outscale=outscale,
                              tta=tta)
    options = OutputOptions(output, suffix, fmt, overwrite)
    plan = plan_jobs(list(inputs), options, outscale or upscaler.scale)
    new_folder = output is not None and not output.suffix and not output.exists() and len(plan.jobs) == 1
    with image_progress(len(plan.jobs), quiet or as_json) as hooks:
        report = run_jobs(plan.jobs, upscaler, outscale, quality, max_pixels, **hooks)
    if new_folder and report.done:  # -o NAME without an extension is a folder: never silently
        report.notes.append(f"-o {output} has no extension, so it is a folder: wrote {report.done[0].target}")
    failures = plan.failures + report.failures
    summary = {"done": [str(j.target) for j in report.done], "skipped": [str(j.target) for j in plan.skipped],
               "notes": report.notes,
               "failed": [{"path": f.path, "error": f.error} for f in failures],
               "seconds": round(report.seconds, 3), "model": upscaler.config.get("name"),
               "scale": upscaler.scale, "outscale": outscale or upscaler.scale, "device": str(upscaler.device)}
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    elif not quiet:
        print_image_summary(summary)
    for note in report.notes if not as_json else []:
        console.print(f"[yellow]note:[/] {escape(note)}")
    for failure in failures:
        if not as_json:
            console.print(f"[red]error:[/] {escape(failure.error)}")
        if ctx.obj["debug"] and failure.exception is not None:
            console.print(escape("".join(traceback.format_exception(failure.exception))), end="")
    if failures:
        sys.exit(1)


@main.command("eval")
@engine_options
@click.option("--data", "-d", "folders", multiple=True, required=True, type=click.Path(path_type=Path),
              help="Folder of HR benchmark images (repeatable), e.g. DATA/val/Set5.")
@click.option("--per-image", is_flag=True, help="A row for every image, not only the means.")
@click.option("--record", is_flag=True, help="Store the means in the model folder's config.json and card.")
@click.option("--json", "as_json", is_flag=True, help="Print the means as JSON on stdout.")
@click.option("--outscale", type=click.IntRange(2, 8), metavar="F",
              help="Score the route to factor F: LR made at F, the model, then a resize (--scale 2 --outscale 4 "
                   "is the x2 model and a x2 resize); without --model or --scale, the packaged model for F.")
@TTA_OPTION
@click.pass_context
def eval_command(ctx, model_spec, scale, device, precision, tile, tile_pad, compiled, folders, per_image, record,
                 as_json, outscale, tta):
    """PSNR/SSIM (Y channel, MATLAB bicubic LR, border cut) with bicubic beside it."""
    if record:
        check_recordable(model_spec)
    upscaler = build_upscaler(model_spec, scale, device, precision, tile, tile_pad, compiled, outscale=outscale,
                              tta=tta)
    if record and outscale and outscale != upscaler.scale:
        raise UpscaleError(f"--record stores a model's own x{upscaler.scale} figures; drop --outscale {outscale}")
    scores = evaluate(upscaler, list(folders), factor=outscale)
    means = summary(scores)
    if record:
        record_metrics(model_spec or upscaler.config.get("name"), means, tta=tta)
    if as_json:
        click.echo(json.dumps(means, indent=2))
    else:
        print_scores(scores, upscaler, per_image, outscale)


@main.command("bench")
@engine_options
@click.option("--size", metavar="WxH", help="Input image size [default: 256x256].")
@click.option("--output", "output_size", metavar="WxH",
              help="Output frame size instead of --size: each model gets the input that makes it, so --against "
                   "compares models of different scales on one frame (e.g. 1280x720).")
@click.option("--repeats", type=click.IntRange(1), default=5, show_default=True, help="Timed runs per round.")
@click.option("--rounds", type=click.IntRange(1), default=3, show_default=True, help="Interleaved rounds.")
@click.option("--tiles", metavar="N,N,..", help="Compare these tile sides (0 = whole image) instead of layouts.")
@click.option("--against", "against", multiple=True, metavar="SPEC",
              help="Compare with these models (same scale) instead of layouts; repeatable.")
@click.option("--precisions", metavar="P,P,..",
              help="Compare these precisions of the model instead of layouts, e.g. fp32,bf16 (bf16 on the CPU: "
                   "fast where the processor has AMX, slow elsewhere).")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON on stdout.")
@click.option("--record", is_flag=True,
              help="Store the model's time (as the engine runs it by default) in its folder's config.json and card.")
@click.pass_context
def bench_command(ctx, model_spec, scale, device, precision, tile, tile_pad, compiled, size, output_size, repeats,
                  rounds, tiles, against, precisions, as_json, record):
    """Engine throughput: memory layouts, tile sides, precisions, eager against compiled (--compile) or models
    compared in the same run, as ratios."""
    if size and output_size:
        raise UpscaleError("give the input size (--size) or the output frame (--output), not both")
    if sum(map(bool, (tiles, against, compiled, precisions))) > 1:
        raise UpscaleError("compare one thing at a time: tile sides (--tiles), models (--against), precisions "
                           "(--precisions) or eager against compiled (--compile)")
    if record and (tiles or compiled or precisions):
        raise UpscaleError("--record stores the time of the engine's default settings; drop --tiles, --precisions "
                           "and --compile")
    if record:
        check_recordable(model_spec)
    upscaler = build_upscaler(model_spec, scale, device, precision, tile, tile_pad)
    if output_size:
        out_width, out_height = parse_size(output_size)
        width, height = round(out_width / upscaler.scale), round(out_height / upscaler.scale)
        size = f"{width}x{height}"
    else:
        size = size or "256x256"
        width, height = parse_size(size)
    configured_tile = upscaler.tile
    default_variant = "channels-last" if upscaler.memory_format == torch.channels_last else "contiguous"
    if against:
        others = {spec: build_upscaler(spec, None, device, precision, tile, tile_pad)
                  for spec in against}
        rows, reference = bench_models({model_spec or upscaler.config.get("name"): upscaler, **others}, height,
                                       width, repeats, rounds, parse_size(output_size) if output_size else None)
    elif precisions:
        variants = {p.strip(): build_upscaler(model_spec, scale, device, p.strip(), tile, tile_pad)
                    for p in precisions.split(",")}
        rows, reference = bench_models(variants, height, width, repeats, rounds)
    else:
        if compiled:
            variants = {"eager": lambda up: up.set_compiled(False), "compiled": lambda up: up.set_compiled(True)}
        elif tiles:
            sides = [parse_tile(value.strip()) for value in tiles.split(",")]
            variants = {f"tile {side}": (lambda up, side=side: setattr(up, "tile", side)) for side in sides}
        else:
            variants = {"contiguous": lambda up: up.set_channels_last(False),
                        "channels-last": lambda up: up.set_channels_last(True)}
        rows, reference = bench(upscaler, height, width, repeats, rounds, variants)
    result = {"model": upscaler.config.get("name"), "device": str(upscaler.device),
              "precision": str(upscaler.dtype).replace("torch.", ""), "threads": torch.get_num_threads(),
              "input": f"{width}x{height}", "output": f"{width * upscaler.scale}x{height * upscaler.scale}",
              "tile": configured_tile, "scale": upscaler.scale,
              "peak_memory_mb": round(peak_memory_mb(upscaler.device), 1),
              "rows": [{**row.__dict__, "fps": row.fps} for row in rows], "reference": reference.__dict__}
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        print_bench(result)
    if record:
        spec = model_spec or upscaler.config.get("name")
        row = rows[0] if against else next(r for r in rows if r.name == default_variant)
        command = " ".join(["upscale bench --model", spec, "--size", size, "--device", upscaler.device.type,
                            *(f"--{name} {value}" for name, value in (("precision", precision), ("tile", tile))
                              if value != "auto"), *(f"--against {other}" for other in against)])
        if output_size:
            command = command.replace(f"--size {size}", f"--output {output_size}")
        beside = {"against": {r.name: round(r.seconds * 1000, 2) for r in rows[1:]}} if against else {}
        entry = speed_entry("engine", upscaler.device, result["precision"], result["input"],
                            f"{width * upscaler.scale}x{height * upscaler.scale}", row.seconds * 1000, command,
                            bicubic_ms=round(reference.bicubic_seconds * 1000, 2), **beside)
        folder = record_speed(spec, entry)
        if not as_json:
            console.print(f"recorded in {folder / 'config.json'} and its card")


@main.command("video")
@click.argument("sources", nargs=-1, required=True)
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Output video (its extension picks the container: .mkv keeps every stream, .mp4, .mov, .webm), "
                   "or a folder for several inputs [default: NAME_xN beside each input].")
@engine_options
@click.option("--outscale", type=click.FloatRange(min=0, min_open=True),
              help="Final factor: the model, then a high-quality resize (to even sides for 4:2:0; "
                   "e.g. 2.25 for 480p to 1080p).")
@TTA_OPTION
@click.option("--codec", help="Video encoder [default: libx264; libvpx-vp9 for .webm], e.g. libx265, ffv1.")
@click.option("--crf", type=click.IntRange(0, 63), help="Constant quality, lower is better [default: 18 for x264].")
@click.option("--preset", help="Encoder speed preset, e.g. veryfast, slow (x264/x265), 0-13 (SVT-AV1).")
@click.option("--pix-fmt", help="Output pixel format [default: the input's when the encoder takes it].")
@click.option("--format", "fmt", type=click.Choice(sorted(VIDEO_FORMAT_SUFFIX), case_sensitive=False),
              help="Container of outputs named for you [default: the input's, .mkv where it is not one of these].")
@click.option("--start", metavar="T", help="Start at T: seconds or [HH:]MM:SS[.ms]; all streams are cut alike.")
@click.option("--end", metavar="T", help="Stop before T (same forms as --start).")
@click.option("--frames-out", type=click.Path(path_type=Path), metavar="DIR",
              help="Write numbered PNG frames (frame_000001.png...) to DIR instead of a video.")
@click.option("--batch", type=click.IntRange(1), default=4, show_default=True, help="Frames per engine call.")
@click.option("--overwrite", is_flag=True,
              help="Replace outputs that exist (without it a batch skips them, one output is refused) and "
                   "discard what a stopped run left.")
@click.option("--resume", is_flag=True, help="Continue a stopped run of the same command where it stopped.")
@click.option("--compat", is_flag=True,
              help="Write 8-bit 4:2:0, which every player takes (10-bit and 4:2:2 sources otherwise stay so).")
@click.option("--audio", type=click.Choice(AUDIO_CHOICES), default="copy", show_default=True,
              help="copy (converting what the container cannot hold, e.g. AAC to Opus for .webm), reencode, none.")
@click.option("--subtitles", type=click.Choice(SUBTITLE_CHOICES), default="copy", show_default=True,
              help="copy (converting what the container cannot hold, e.g. SubRip to mov_text for .mp4), "
                   "convert, none.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.pass_context
def video_command(ctx, sources, output, model_spec, scale, device, precision, tile, tile_pad, compiled, outscale,
                  tta, codec, crf, preset, pix_fmt, fmt, start, end, frames_out, batch, overwrite, resume, compat, audio,
                  subtitles, quiet):
    """Upscale videos (files, folders and globs); timestamps, audio, subtitles, rotation, colour tags,
    metadata and chapters are kept.

    Folders of frames go through `upscale image DIR -o OUT`."""
    from . import video_runs
    from .video import VideoOptions, parse_time

    options = VideoOptions(codec, crf, preset, pix_fmt, parse_time(start), parse_time(end), batch, overwrite,
                           resume, audio=audio, subtitles=subtitles, compat=compat, outscale=outscale)
    engine = dict(model_spec=model_spec, scale=scale, device=device, precision=precision, tile=tile, tile_pad=tile_pad,
                  compiled=compiled, tta=tta)  # build_upscaler's arguments
    one_file = len(sources) == 1 and not Path(sources[0]).is_dir() and not any(c in sources[0] for c in "*?[")
    if frames_out is not None:
        if output is not None or not one_file:
            raise click.UsageError("--frames-out takes one video file and no -o")
        video_runs.to_frames(Path(sources[0]), frames_out, engine, options, quiet)
    elif one_file and output is not None and output.suffix and not output.is_dir():
        video_runs.one_video(Path(sources[0]), output, engine, options, quiet)
    else:
        video_runs.many_videos(list(sources), output, fmt, engine, options, quiet, ctx.obj["debug"])


@main.command("search")
@click.option("--scale", "-s", type=click.IntRange(2, 8), required=True, help="Upscaling factor, 2 to 8.")
@click.option("--train", "train_dirs", multiple=True, required=True, type=click.Path(path_type=Path),
              help="Folder of HR training images (repeatable).")
@click.option("--val", "val_dirs", multiple=True, required=True, type=click.Path(path_type=Path),
              help="Folder of HR validation images (repeatable).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Model folder to create.")
@click.option("--budget-madds", metavar="X", help="Multiply-adds per output pixel the network may spend, e.g. 30k.")
@click.option("--budget-mode", type=click.Choice(list(BUDGET_MODES)), default="target", show_default=True,
              help="target: spend the budget; at-most: a ceiling only.")
@click.option("--latency-ms", type=click.FloatRange(min=0, min_open=True),
              help="Milliseconds per output frame (of --at) the network should take on --latency-device.")
@click.option("--at", "latency_at", metavar="WxH", help="The output frame of --latency-ms, e.g. 1280x720.")
@click.option("--latency-device", type=click.Choice(LATENCY_DEVICES), default="cpu", show_default=True,
              help="Where --latency-ms holds: the CPU (fp32, --threads), the CPU in bf16 (as --precision bf16 "
                   "runs: fast with AMX) or a CUDA GPU (fp16).")
@click.option("--latency-tile", type=click.IntRange(0), help="Engine tile side to time [default: 256 on the CPU "
              "(whole frames no larger than one tile), whole frames on a GPU].")
@click.option("--prune", is_flag=True, help="Search to 1.3x --latency-ms, then prune channels down to it and "
              "fine-tune (the unpruned model is kept in OUT/unpruned).")
@click.option("--prune-steps", type=click.IntRange(0), default=2000, show_default=True,
              help="Fine-tuning steps after pruning.")
@click.option("--prune-step", "prune_channel_step", type=click.IntRange(1), default=PRUNE_CHANNEL_STEP,
              show_default=True,
              help="Channels pruned at a time (as `upscale prune --step`).")
@click.option("--time-budget", metavar="DURATION", help="Wall-clock length, e.g. 45m or 2h [default: 2h].")
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True), help="Length in epochs instead of time.")
@click.option("--steps", type=click.IntRange(1), help="Length in steps: the same result for the same seed.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue the search whose checkpoint is in --out.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--threads", type=click.IntRange(1), help="CPU threads [default: PyTorch's choice].")
@click.option("--max-width", type=click.IntRange(4), default=32, show_default=True, help="Widest convolution.")
@click.option("--max-cells", type=click.IntRange(0, 16), default=6, show_default=True,
              help="Cell slots before the first upsampler.")
@click.option("--max-cells-upsampled", type=click.IntRange(0, 16), default=SEARCH_MAX_CELLS_UPSAMPLED,
              show_default=True,
              help="Cell slots after each upsampler (up to 3x the input resolution).")
@click.option("--ops-per-cell", type=click.IntRange(1, 3), default=2, show_default=True)
@click.option("--tail", type=click.Choice(["conv", "shuffle"]), default="conv", show_default=True,
              help="conv: upsamplers in the path, a bicubic skip; shuffle: every cell at the input resolution and "
                   "one pixel shuffle at the end (the fast layout for real-time models).")
@click.option("--ops", metavar="A,B,..", default=SEARCH_OPS, show_default=True,
              help=f"Candidate operations, any of {', '.join(OPERATIONS)}.")
@click.option("--relaxation", type=click.Choice(list(RELAXATIONS)), default="sparsestmax",
              show_default=True, help="How logits become sparse distributions (SSN's projection, or the old variant).")
@click.option("--budget-penalty", type=click.FloatRange(0), default=0.05, show_default=True,
              help="Weight of the quadratic term that damps the budget's multiplier (augmented Lagrangian).")
@click.option("--budget-gradient", type=click.Choice(list(BUDGET_GRADIENTS)), default="softmax", show_default=True,
              help="Gradient of the budget: softmax's (straight-through, never zero) or the relaxation's own.")
@click.option("--depth-finish", type=click.Choice(list(DEPTH_FINISHES)), default=DEFAULT_DEPTH_FINISH,
              show_default=True,
              help="How the number of cells of a segment is finished as the radius grows: at its most likely "
                   "count, or at its expected count (the one the budget held the cost at).")
@click.option("--batch", type=click.IntRange(1), default=16, show_default=True)
@click.option("--patch", type=click.IntRange(4), default=32, show_default=True, help="LR patch side.")
@click.option("--val-every", type=click.IntRange(1), default=200, show_default=True,
              help="Steps between validations.")
@click.option("--max-side", type=click.IntRange(64), default=2048, show_default=True,
              help="Larger training photos are shrunk to this side.")
@click.option("--quiet", "-q", is_flag=True, help="No live view; the run's few messages still print.")
@click.pass_context
def search_command(ctx, scale, train_dirs, val_dirs, out, budget_madds, budget_mode, latency_ms, latency_at,
                   latency_device, latency_tile, prune, prune_steps, prune_channel_step, time_budget, epochs, steps,
                   seed, resume, device, threads, max_width, max_cells, max_cells_upsampled, ops_per_cell, tail, ops,
                   relaxation, budget_penalty, budget_gradient, depth_finish, batch, patch, val_every, max_side, quiet):
    """Search a network for your data and train it in one phase; --out becomes a model folder.

    Runs under torchrun too (`torchrun --nproc-per-node N -m upscale search ...`): rank 0 shows and writes."""
    from .searching import print_search_result, search_with_live_view

    if threads:
        torch.set_num_threads(threads)
    config = build_config(scale, budget_madds=budget_madds, time_budget=time_budget, epochs=epochs, steps=steps,
                          seed=seed, max_width=max_width, max_cells=max_cells,
                          max_cells_upsampled=max_cells_upsampled, ops_per_cell=ops_per_cell, ops=ops, tail=tail,
                          batch=batch, patch=patch, val_every=val_every, relaxation=relaxation,
                          budget_gradient=budget_gradient, budget_penalty=budget_penalty,
                          budget_mode=budget_mode, depth_finish=depth_finish, latency_ms=latency_ms,
                          latency_at=latency_at, latency_device=latency_device, latency_threads=threads,
                          latency_tile=latency_tile,
                          prune=prune, prune_steps=prune_steps, prune_channel_step=prune_channel_step)
    main_rank = os.environ.get("RANK", "0") == "0"
    command = typed_command(ctx, leave_out=("resume",))
    result = search_with_live_view(config, list(train_dirs), list(val_dirs), out, device, resume, quiet,
                                   command=command, max_side=max_side, main_rank=main_rank)
    if result is not None:
        print_search_result(result)


@main.command("prune")
@click.argument("spec")
@click.option("--latency-ms", type=click.FloatRange(min=0, min_open=True), required=True,
              help="Milliseconds per output frame (of --at) the pruned network should take.")
@click.option("--at", "latency_at", metavar="WxH", required=True, help="The output frame, e.g. 1280x720.")
@click.option("--train", "train_dirs", multiple=True, required=True, type=click.Path(path_type=Path),
              help="Folder of HR training images for the importances and the fine-tuning (repeatable).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Model folder to create.")
@click.option("--latency-device", type=click.Choice(LATENCY_DEVICES), default="cpu", show_default=True,
              help="cpu (fp32), cpu-bf16 (as --precision bf16 runs) or cuda (fp16).")
@click.option("--threads", type=click.IntRange(1), help="CPU threads to time and train with.")
@click.option("--steps", type=click.IntRange(0), default=2000, show_default=True, help="Fine-tuning steps.")
@click.option("--step", "channel_step", type=click.IntRange(1), default=PRUNE_CHANNEL_STEP, show_default=True,
              help="Channels removed at a time (a smaller step can stop closer to the budget: 20 channels less 4 "
                   "is a fifth of the width).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.pass_context
def prune_command(ctx, spec, latency_ms, latency_at, train_dirs, out, latency_device, threads, steps, channel_step,
                  seed):
    """Prune a model's channels until it runs within --latency-ms per frame on this device, then fine-tune."""
    from trinas.export import PROVENANCE, save_model
    from trinas.prune import prune_for_frame
    from trinas.search_config import frame_size

    from .models import load

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise click.UsageError(f"{out} is {'not empty' if out.is_dir() else 'a file'}; choose a new folder for the "
                               f"pruned model")
    for folder in train_dirs:
        if not folder.is_dir():
            raise click.UsageError(f"training folder not found: {folder}")
    frame = frame_size(latency_at)  # refused before anything is written
    if threads:
        torch.set_num_threads(threads)
    model = load(spec)
    unpruned = model.module.genotype.describe()
    # Built beside OUT and moved there complete: a stopped or failed pruning leaves no half-made model (nor an
    # OUT holding a checkpoint that a rerun would refuse as not empty).
    staging = out.parent / f".{out.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        result = prune_for_frame(model.module, list(train_dirs), latency_ms, frame, latency_device, threads,
                                 fine_tune_steps=steps, seed=seed, checkpoint=staging / "fine-tune-checkpoint.pt",
                                 step=channel_step, log=lambda line: console.print(escape(line)))
        (staging / "fine-tune-checkpoint.pt").unlink(missing_ok=True)
        training = {**model.config.get("training", {}),
                    "pruned": {"from": spec, "unpruned": unpruned, **result.record(), "command": typed_command(ctx)}}
        # Pruning keeps the network's make-up: a hand-made model pruned is still hand-made, never a "baseline".
        made = {k: model.config.raw[k] for k in PROVENANCE if k in model.config.raw}
        save_model(result.net.cpu(), staging, training=training, **made, name=out.name)
        if out.exists():
            out.rmdir()  # empty, as checked above
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    console.print(escape(f"wrote {out}: {result.net.genotype.describe()}, {result.after_ms:,.1f} ms predicted per "
                         f"{latency_at} frame (was {result.before_ms:,.1f}); measure it: upscale bench "
                         f"--model {out} --against {spec}"))


@main.group("models")
def models_group() -> None:
    """List, inspect, pre-fetch and publish models: packaged names, folders, hf:owner/repo[@revision]."""


@models_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
@click.pass_context
def models_list(ctx, as_json):
    """Packaged models and Hub models in the local cache, with scale, parameters and PSNR."""
    from .models import list_models

    entries = list_models()
    if as_json:
        click.echo(json.dumps([e.to_dict() for e in entries], indent=2))
    else:
        print_table(_models_table(entries))


@models_group.command("info")
@click.argument("spec")
@click.option("--json", "as_json", is_flag=True, help="Print the entry and config.json on stdout.")
@click.pass_context
def models_info(ctx, spec, as_json):
    """Show a model's numbers, its Hub record and its model card."""
    from .models import describe

    entry, config, card = describe(spec)
    if as_json:
        click.echo(json.dumps({**entry.to_dict(), "config": config}, indent=2))
    else:
        _print_model_info(entry, card)


@models_group.command("export")
@click.argument("spec")
@click.option("--onnx", "onnx_path", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="ONNX file to write (the folded network; dynamic batch, height and width).")
@click.option("--overwrite", is_flag=True, help="Replace the file if it exists.")
@click.option("--no-check", is_flag=True, help="Skip comparing ONNX Runtime's output with PyTorch's.")
@click.pass_context
def models_export(ctx, spec, onnx_path, overwrite, no_check):
    """Export a model to ONNX, checked against PyTorch with ONNX Runtime (needs the onnx extra)."""
    from trinas.export import check_onnx, export_onnx

    from .models import load

    if onnx_path.suffix.lower() != ".onnx":
        raise click.UsageError(f"--onnx {onnx_path}: the file name must end in .onnx")
    if onnx_path.exists() and not overwrite:
        raise click.UsageError(f"{onnx_path} exists; pass --overwrite to replace it")
    if not onnx_path.parent.is_dir():
        raise click.UsageError(f"no folder {onnx_path.parent} to write {onnx_path.name} into")
    model = load(spec).module
    export_onnx(model, onnx_path)
    line = f"wrote {onnx_path} (x{model.scale}, input lr: N x {model.channels} x H x W in [0, 1], output sr)"
    if not no_check:
        worst = check_onnx(model, onnx_path)
        if worst > 1e-4:
            raise click.ClickException(f"ONNX Runtime's output differs from PyTorch's by up to {worst:.2e}")
        line += f"; ONNX Runtime matches PyTorch within {worst:.1e}"
    console.print(escape(line))


@models_group.command("pull")
@click.argument("spec")
@click.option("--json", "as_json", is_flag=True, help="Print the cached entry as JSON on stdout.")
@click.pass_context
def models_pull(ctx, spec, as_json):
    """Download hf:owner/repo[@revision] into the Hugging Face cache (verified), for later offline use."""
    from .models import pull

    entry = pull(spec)
    if as_json:
        click.echo(json.dumps(entry.to_dict(), indent=2))
    else:
        Console().print(f"[green]cached[/] {escape(entry.hub)} x{entry.scale} in {escape(str(entry.folder))}")


@models_group.command("push")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--repo", required=True, metavar="OWNER/NAME", help="Hub repository to publish to (created if new).")
@click.option("--private", is_flag=True, help="Create the repository private.")
@click.option("--message", "-m", help="Commit message.")
@click.option("--json", "as_json", is_flag=True, help="Print the commit as JSON on stdout.")
@click.pass_context
def models_push(ctx, folder, repo, private, message, as_json):
    """Publish a model folder (e.g. a search result); the card is generated from config.json. Token: HF_TOKEN or
    `hf auth login`."""
    from .hub import push

    result = push(folder, repo, private=private, message=message)
    if as_json:
        click.echo(json.dumps(result.__dict__, indent=2))
    else:
        Console().print(f"[green]pushed[/] {', '.join(result.files)} -> {escape(result.url)}")


def _models_table(entries):
    from rich.table import Table

    table = Table("model", "source", "scale", "params", "PSNR (dB)", "hub",
                  caption="default: what --scale picks for its factor (the best Set5 PSNR packaged)")
    for e in entries:
        psnr = ", ".join(f"{name} {value:.2f}" for name, value in e.psnr.items()) or "-"
        scale = f"x{e.scale}, default" if e.default else f"x{e.scale}"
        table.add_row(escape(e.spec), e.source, scale, f"{e.params:,}", psnr, escape(e.hub or "-"))
    return table


def _print_model_info(entry, card):
    from rich.markdown import Markdown
    from rich.table import Table

    from .hub import default_repo

    hub = entry.hub or (f"no hub record (publish as hf:{default_repo(entry.name)})" if entry.source == "packaged"
                        else "-")
    if entry.hub and not entry.commit and entry.source == "packaged":
        hub += " (not published yet: no commit recorded)"
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
