"""The typer application that every command module of :mod:`adatok.cli` registers its commands on."""

from __future__ import annotations

import contextlib
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


def run(argv: list[str] | None = None) -> int:
    """The ``adatok`` command: :data:`app` with usage errors (an unknown option, a missing argument,
    ``--tokens abc``) printed as one line ``error: <message> (see: adatok COMMAND --help)`` on
    stderr with exit code 2, like every other error, instead of click's framed usage box. Help,
    ``--version`` and the commands themselves are :data:`app`'s."""
    import sys
    import warnings

    from PIL import Image

    # Pillow warns (two lines on stderr) about an image between its pixel limit and twice it, then
    # adatok refuses the image with its own one-line error: the warning says nothing more.
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    # a file name the terminal's encoding lacks: escaped, not a traceback (a strict stream only: UTF-8
    # mode's surrogateescape writes a name's own bytes); as it was again after the command
    strict = [s for s in (sys.stdout, sys.stderr)
              if getattr(s, "errors", None) == "strict" and hasattr(s, "reconfigure")]
    for stream in strict:
        stream.reconfigure(errors="backslashreplace")
    try:
        with _terminating_as_interrupt():
            return _run(sys.argv[1:] if argv is None else list(argv))
    except (SystemExit, BrokenPipeError) as exc:
        if not _pipe_closed(exc):
            raise
        return _quiet_after_closed_pipe()
    finally:
        for stream in strict:
            stream.reconfigure(errors="strict")


def _caused_by(exc: BaseException | None, kind: type[BaseException]) -> bool:
    """Whether ``exc`` is a ``kind``, or has one as its cause or context at any depth."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _pipe_closed(exc: BaseException) -> bool:
    """Whether ``exc`` came from writing to a pipe whose reader is gone (``adatok info F | head -1``):
    a BrokenPipeError, or the SystemExit(1) that rich and typer turn one into, without a word."""
    return _caused_by(exc, BrokenPipeError)


def _quiet_after_closed_pipe() -> int:
    """End as a Unix tool whose reader went away: nothing more written (stdout goes to the null device,
    so that flushing it at exit raises nothing) and exit code 141, 128 + SIGPIPE, as a shell reports a
    tool that SIGPIPE ended (the command exited 1 with nothing on stderr)."""
    import os
    import signal
    import sys

    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.__stdout__.fileno())
        os.close(devnull)
    return 128 + getattr(signal, "SIGPIPE", 13)


#: The signal that stopped the command (SIGTERM, SIGHUP), set by :func:`_terminating_as_interrupt`'s handler.
_stopped_by: int | None = None


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (``kill``, a closed terminal, a job scheduler's time limit) raised as an exception,
    as Ctrl-C is: the ``finally`` and ``except BaseException`` blocks that remove temporary files and
    half-made folders run (the default action killed the process on the spot and left them)."""


@contextlib.contextmanager
def _terminating_as_interrupt():
    """While the command runs, SIGTERM and SIGHUP raise :class:`Terminated` in the main thread (a
    signal ignored, as under ``nohup``, stays ignored); the handlers before are restored after."""
    import signal
    import threading

    global _stopped_by
    _stopped_by = None
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        global _stopped_by
        if _stopped_by is None:  # (a second one while cleaning up is not raised again)
            _stopped_by = signum
            raise Terminated(signum)

    saved = {}
    for name in ("SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is not None and signal.getsignal(signum) is signal.SIG_DFL:
            saved[signum] = signal.signal(signum, stop)
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def _aborted() -> int:
    """Say why the command stopped early (Ctrl-C, or a signal that ends it) on stderr; its exit code:
    130 for Ctrl-C, 128 + the signal's number for the others (143 for SIGTERM), as a shell reports them."""
    import signal

    with contextlib.suppress(OSError):  # (SIGHUP: the terminal may be gone)
        if _stopped_by is not None:
            typer.echo(f"error: stopped by {signal.Signals(_stopped_by).name}", err=True)
        else:
            typer.echo("error: aborted", err=True)
    return 130 if _stopped_by is None else 128 + _stopped_by


def _run(argv: list[str]) -> int:
    """:func:`run`'s work."""
    try:  # `adatok` alone shows the help, as the app's no_args_is_help does when run standalone
        code = app(args=argv or ["--help"], prog_name="adatok", standalone_mode=False)
    except typer.Exit as exc:
        if _interrupted(exc):
            return _aborted()
        return exc.exit_code
    except typer.Abort:
        return _aborted()
    except KeyboardInterrupt:  # (one raised outside typer's own handling)
        return _aborted()
    except Exception as exc:
        if _interrupted(exc):  # Ctrl-C inside compiled code: numba hands it on as a SystemError
            return _aborted()
        # click's usage errors (typer vendors click privately: recognised by what they carry)
        if not (hasattr(exc, "format_message") and hasattr(exc, "exit_code")):
            raise
        ctx = getattr(exc, "ctx", None)
        where = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
        typer.echo(f"error: {' '.join(exc.format_message().split())}{where}", err=True)
        return 2
    if code == 130:  # typer 0.29 turns a KeyboardInterrupt into exit code 130, returned without a word
        return _aborted()
    return code if isinstance(code, int) else 0


def _interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` came from a KeyboardInterrupt (its cause or context, at any depth)."""
    return _caused_by(exc, KeyboardInterrupt)


def main() -> None:
    """Entry point of the ``adatok`` console script and ``python -m adatok.cli``."""
    import sys

    sys.exit(run())
