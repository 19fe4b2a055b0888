"""The command a user typed, rebuilt from what click parsed, for model cards and records.

`sys.argv` is the outer program's when a command runs inside another one (a test's CliRunner, a notebook),
so a card built from it would name the wrong command. Only options the user gave are written; defaults
stay out, so the line reads as typed and still reruns the same work.
"""

from __future__ import annotations

import shlex

import click
from click.core import ParameterSource

GIVEN = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)


def _words(param: click.Parameter, value) -> list[str]:
    values = list(value) if param.multiple or (param.nargs != 1 and value is not None) else [value]
    if isinstance(param, click.Argument):
        return [str(v) for v in values]
    flag = max(param.opts, key=len)
    if isinstance(param, click.Option) and param.is_flag:
        if param.secondary_opts and not value:
            return [max(param.secondary_opts, key=len)]
        return [flag] if value else []
    return [word for v in values for word in (flag, f"{v:g}" if isinstance(v, float) else str(v))]


def typed_command(ctx: click.Context, program: str = "upscale", leave_out: tuple[str, ...] = ()) -> str:
    """`program` and the command path of `ctx` with its arguments, then each option the user gave (not
    `leave_out`, e.g. a `--resume` that a card should not repeat), shell-quoted."""
    arguments, options = [], []
    for param in ctx.command.params:
        if param.name in leave_out or ctx.get_parameter_source(param.name) not in GIVEN:
            continue
        words = _words(param, ctx.params[param.name])
        (arguments if isinstance(param, click.Argument) else options).extend(words)
    path = ctx.command_path.split()[1:]  # the root's name is whatever the outer program called it
    return shlex.join([program, *path, *arguments, *options])
