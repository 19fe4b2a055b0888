"""The command a card records is the one the user typed, whoever ran it (a shell, a test's runner)."""

import click
from click.testing import CliRunner

from upscale.invocation import typed_command


@click.group()
def tool():
    pass


@tool.command("make")
@click.argument("source")
@click.option("--size", type=float, default=1.0)
@click.option("--train", "train_dirs", multiple=True)
@click.option("--fast/--careful", default=True)
@click.option("--resume", is_flag=True)
@click.option("--seed", type=int, default=0)
@click.pass_context
def make(ctx, source, size, train_dirs, fast, resume, seed):
    click.echo(typed_command(ctx, leave_out=("resume",)))


def typed(*args: str) -> str:
    result = CliRunner().invoke(tool, ["make", *args])
    assert result.exit_code == 0, result.output
    return result.output.strip()


def test_only_what_was_given_in_the_order_of_the_options():
    assert typed("a b.png") == "upscale make 'a b.png'"
    assert typed("x", "--seed", "0", "--train", "t1", "--size", "2.5", "--train", "t 2") == \
        "upscale make x --size 2.5 --train t1 --train 't 2' --seed 0"  # a default typed out is kept


def test_flags_and_left_out_options():
    assert typed("x", "--careful", "--resume") == "upscale make x --careful"
    assert typed("x", "--fast") == "upscale make x --fast"
