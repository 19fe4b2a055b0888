"""One place that turns expected failures into one-line messages and exit codes instead of tracebacks."""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator

import click


class UpscaleError(Exception):
    """Base for errors whose message is meant for the user as it is."""


@contextlib.contextmanager
def friendly_errors(debug: bool) -> Iterator[None]:
    """Run a command body; any exception becomes `error: message` and exit 1, unless `debug` is on."""
    try:
        yield
    except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
        raise
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the whole point: no traceback for the user
        if debug:
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        click.secho(f"error: {message}", fg="red", err=True)
        sys.exit(1)
