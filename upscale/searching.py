"""`upscale search`: the live view of a running search and its final summary; the work is trinas.search."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table

from trinas.search import SearchConfig, SearchResult, Status, run_search
from trinas.search_config import frame_size

console = Console(stderr=True, soft_wrap=True)  # a message stays one line, whatever the width


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def render(status: Status | None, note: str) -> Group:
    """The panel: phase, progress, radius, losses, validation PSNR, cost, entropies, leading network, time."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    if status is None:
        table.add_row("phase", note)
        return Group(table)
    phase = ("searching: supernet, radius growing" if status.phase == "search"
             else "training the found network (every distribution one-hot)")
    steps = f"{status.step:,}" + (f" / {status.total_steps:,}" if status.total_steps else "")
    table.add_row("phase", phase)
    table.add_row("progress", Group(ProgressBar(total=1.0, completed=status.progress, width=40)))
    table.add_row("step", steps)
    table.add_row("radius", f"{status.radius:.2f} / 1.00")
    arch = f"   architecture {status.arch_loss:.4f}" if status.arch_loss is not None else ""
    table.add_row("loss", f"L1 {status.loss:.4f}{arch}")
    table.add_row("validation", f"{status.val_psnr:.2f} dB PSNR" if status.val_psnr is not None else "-")
    budget = (f" (budget {status.budget_madds:,.0f}, its multiplier {status.multipliers.get('madds', 0.0):.4f})"
              if status.budget_madds else "")
    table.add_row("multiply-adds", f"{status.expected_madds:,.0f} per output pixel{budget}")
    if status.latency_ms is not None and status.expected_latency_ms is not None:
        table.add_row("latency", f"{status.expected_latency_ms:,.1f} ms per frame predicted (budget "
                                 f"{status.latency_ms:,.1f}, its multiplier {status.multipliers.get('latency_ms', 0.0):.4f})")
    table.add_row("entropy", "   ".join(f"{k} {v:.2f}" for k, v in status.entropy.items()))
    warm = status.phase == "search" and status.arch_loss is None
    table.add_row("leading", "warm-up: weights only, every choice still equal" if warm else escape(status.leading))
    table.add_row("time", f"{_clock(status.elapsed_s)} elapsed, about {_clock(status.remaining_s)} left")
    if note:
        table.add_row("", escape(note))
    return Group(table)


def search_with_live_view(config: SearchConfig, train: list[Path], val: list[Path], out: Path, device: str,
                          resume: bool, quiet: bool, command: str | None = None,
                          max_side: int | None = 2048, main_rank: bool = True) -> SearchResult | None:
    """Run the search with a live panel on stderr. Quiet, its few messages still print, one per line: a
    background run's log must say that it resumed, or that its latency table was timed on a busy machine.
    Torchrun ranks other than 0 print nothing."""
    if quiet or not main_rank:
        log = (lambda line: console.print(escape(line))) if main_rank else (lambda line: None)
        return run_search(config, train, val, out, device, resume, max_side, log=log, command=command)
    state: dict = {"status": None, "note": "checking the input and preparing the data"}
    with Live(render(None, state["note"]), console=console, refresh_per_second=2, transient=True) as live:

        def on_status(status: Status) -> None:
            state["status"] = status
            live.update(render(status, state["note"]))

        def log(line: str) -> None:
            live.console.print(escape(line))
            state["note"] = ""
            live.update(render(state["status"], "training starts: the first numbers come after a few steps"
                               if state["status"] is None else ""))

        return run_search(config, train, val, out, device, resume, max_side, on_status=on_status, log=log,
                          command=command)


def print_search_result(result: SearchResult) -> None:
    table = Table(title=f"search result in {result.out}", title_justify="left", show_header=False)
    table.add_row("architecture", escape(result.genotype.describe()))
    table.add_row("parameters", f"{result.params:,}")
    budget = f" (budget {result.budget_madds:,.0f})" if result.budget_madds else ""
    table.add_row("multiply-adds", f"{result.madds_per_output_pixel:,.0f} per output pixel{budget}")
    if latency := result.latency:
        table.add_row("predicted time", f"{latency.ms:,.1f} ms per {latency.at} frame on {latency.device} "
                                        f"(budget {latency.budget_ms:,.1f})")
    for name, m in result.metrics.items():
        table.add_row(f"{name} PSNR", f"{m['psnr']:.2f} dB (bicubic {m['bicubic_psnr']:.2f})")
    table.add_row("steps, time", f"{result.steps:,} steps in {_clock(result.seconds)}")
    table.add_row("report", ", ".join(result.files))
    Console().print(table)
    Console().print(f"use it: upscale image photo.png --model {escape(str(result.out))}")
    if result.latency:
        width, height = frame_size(result.latency.at)
        Console().print(f"measure it: upscale bench --model {escape(str(result.out))} --output {width}x{height}")
