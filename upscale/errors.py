"""User errors, and the one place that turns every failure into a line and an exit code.

A user error (bad input, a missing file, a full disk, a Hub that does not answer) is one red line and exit 1.
Anything else is a bug: one line that says so and how to see the traceback (`--debug`), and exit 2.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from typing import Iterator

import click

from trinas.export import ModelFormatError, OnnxUnavailable
from trinas.search_config import SearchInputError


class UpscaleError(Exception):
    """Base for errors whose message is meant for the user as it is."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (what `timeout`, `docker stop`, systemd and job schedulers send): stopped like Ctrl-C, so the
    same clean-up runs (no partial output is left), and exit 143."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While a command runs, SIGTERM raises `Terminated` in the main thread (elsewhere nothing changes)."""
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: leave the signal alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# The library's own user errors (trinas never imports upscale, so they cannot share the base class), and
# what the environment refuses (a file that cannot be written, a full disk).
USER_ERRORS: tuple[type[BaseException], ...] = (UpscaleError, ModelFormatError, SearchInputError, OnnxUnavailable,
                                                OSError)
BUG_EXIT = 2


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.contextmanager
def one_line_errors(debug: bool) -> Iterator[None]:
    """Around a whole command (the click group does this once): a user error is `error: message` and exit 1,
    any other exception a bug report line and exit 2; `debug` lets the traceback through instead."""
    try:
        with sigterm_as_interrupt():
            yield
    except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
        raise
    except Terminated:
        click.echo("terminated (SIGTERM)", err=True)
        sys.exit(143)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the one place every failure is turned into a line
        if debug:
            raise
        if isinstance(exc, USER_ERRORS):
            click.secho(f"error: {_first_line(exc)}", fg="red", err=True)
            sys.exit(1)
        click.secho(f"error: unexpected {type(exc).__name__}: {_first_line(exc)} (a bug in upscale: rerun with "
                    "--debug for the traceback, and please report it)", fg="red", err=True)
        sys.exit(BUG_EXIT)
