"""The typer application that every command module of :mod:`adatok.cli` registers its commands on."""

from __future__ import annotations

from typing import Annotated

import typer

import adatok

app = typer.Typer(
    name="adatok",
    help="Images as ordered, variable-length, prefix-decodable token sequences.\n\n"
         "Errors print one line `error: <message>` on stderr and exit with code 2.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"adatok {adatok.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True,
                                          help="Print the adatok version and exit.")] = False,
) -> None:
    """Images as ordered, variable-length, prefix-decodable token sequences."""
