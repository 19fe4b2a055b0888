"""The `upscale` command line: thin click commands over the library, rendered with rich.

Every command turns known errors into one red line and a non-zero exit; `--debug` shows tracebacks.
"""

from __future__ import annotations

import sys

import click
from rich.console import Console

from .errors import friendly_errors

console = Console(stderr=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="trinas-upscale")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Upscale images and videos with networks found by trilevel architecture search."""
    ctx.obj = {"debug": debug}


if __name__ == "__main__":
    sys.exit(main())
