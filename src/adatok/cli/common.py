"""What the command modules share: one-line error reporting, reading files, parsing budgets and
lists, checking counts, formatting numbers, and the progress bar of long runs."""

from __future__ import annotations

import contextlib
import errno
import functools
import math
import os
import re
import shlex
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console

import adatok
from adatok import AdatokError, BudgetError, Bpp, ContainerError, Lossless, Quality, TokenSequence, Tokens
from adatok.core.checks import counted  # noqa: F401  (the commands' plural, shared with every layer)
from adatok.core.errors import cli_message, naming_file
from adatok.core.imageio import check_new_file, image_suffixes
from adatok.core.sequence import MAGIC, OTHER_WEIGHTS, check_maker, parse_container, unchecked_bytes

F = TypeVar("F", bound=Callable[..., Any])


@contextlib.contextmanager
def warnings_as_lines() -> Iterator[None]:
    """Python's warnings while a command runs (``--data samples`` or ``tokenize-dataset fashion-mnist``
    beside a folder of that name) as one ``warning: <message>`` line on stderr, as the commands print
    their own, not Python's two lines with the file, line and source line that warned; shown under
    ``--quiet`` too: they say the command may not do what its user meant. Every command has it, through
    :func:`reporting_errors` (until 2026-12-03 ``eval`` and ``demo`` alone)."""
    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = re.sub(r"\s*\n\s*", " ", str(message).strip())  # (one line, as an error's)
        typer.echo(f"warning: {text}", err=True)

    with warnings.catch_warnings():
        warnings.showwarning = show  # (restored by catch_warnings)
        yield


def reporting_errors(fn: F) -> F:
    """Turn an :class:`AdatokError` raised by a command into ``error: <message>`` and exit code 2 (the
    message in command-line terms where the library's advice is Python's: :func:`cli_message`); a
    ``MemoryError`` or an ``OSError`` (not a broken pipe) likewise, in one line. Python's warnings
    while it runs are ``warning: <message>`` lines (:func:`warnings_as_lines`)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with warnings_as_lines():
                return fn(*args, **kwargs)
        except AdatokError as exc:
            message = re.sub(r"\s*\n\s*", " ", cli_message(exc).strip()) or type(exc).__name__
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(code=2) from None
        except MemoryError as exc:  # (a 119-line traceback: an input, e.g. a .atk header, may ask for more)
            detail = f" ({str(exc).strip()[:160]})" if str(exc).strip() else ""
            typer.echo(f"error: out of memory{detail}: the input needs more memory than this machine has", err=True)
            raise typer.Exit(code=2) from None
        except BrokenPipeError:  # (the reader of the output went away: the entry point ends quietly with 141)
            raise
        except OSError as exc:  # what the checks before the work could not foresee: a full disk, a folder
            # that cannot be made (/proc/x as root), a file removed meanwhile; a traceback until 2026-12-03
            where = f": {exc.filename}" if exc.filename else ""
            typer.echo(f"error: {exc.strerror or exc}{where}", err=True)
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]


def invoked_command() -> str | None:
    """The command line this process was started with, as a shell would take it back (``adatok
    ...``), for a manifest or a report to say how to run it again; ``None`` when not run as the
    ``adatok`` command (from Python, or by a test runner)."""
    if Path(sys.argv[0]).name not in ("adatok", "__main__.py"):
        return None
    return shlex.join(["adatok", *sys.argv[1:]])


def default_tokenizer(lossless: bool) -> str:
    """The tokenizer a command uses when none is named: ``wavelet-lossless`` for ``--lossless``,
    else ``wavelet``."""
    return "wavelet-lossless" if lossless else "wavelet"


def check_link_loop(path: Path) -> None:
    """Refuse a path that is, or goes through, a symbolic link loop (``ln -s a b; ln -s b a``):
    ``Path.resolve`` raised RuntimeError (Python < 3.13) and ``exists()`` said False, so a loop was
    a traceback, or "no such file" for a name that is there."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _link_loop(path) from None


def resolved(path: Path) -> Path:
    """``path.resolve()``, with a symbolic link loop on the way an :class:`AdatokError`."""
    check_link_loop(path)
    try:
        return Path(path).resolve()
    except RuntimeError:  # (a loop os.stat did not walk into: Python < 3.13 reports it so)
        raise _link_loop(path) from None


def _link_loop(path: Path) -> AdatokError:
    return AdatokError(f"{path} goes through a symbolic link loop (links that point at each other, never at a file); "
                       "give another path")


def read_bytes(path: Path, n_bytes: int | None = None) -> bytes:
    """The bytes of an ``.atk`` file (its first ``n_bytes`` when given), with missing / unreadable
    files as :class:`AdatokError`, read no further than the container goes: its fixed first bytes
    (magic number, version, header length) and header are read and checked first, and then the
    payload length the header gives bounds the rest. ``/dev/zero`` or a large file of something else
    was read whole into memory before any check (a MemoryError, or a machine out of memory). The
    payload's checksums are checked too; every error of the container names the file first
    (:func:`~adatok.core.errors.naming_file`), a damaged chunk with the bytes intact before it."""
    return _read_container(path, n_bytes)[0]


def _read_container(path: Path, n_bytes: int | None = None) -> tuple[bytes, bool, dict, bytes]:
    """:func:`read_bytes`, whether the file itself ends within the bytes read (not only
    ``n_bytes``: a file shorter than its container is cut, whatever ``--bytes`` asked for), and the
    container's header and payload (:func:`~adatok.core.sequence.parse_container`, parsed once)."""
    check_link_loop(path)
    if not path.exists():
        raise AdatokError(f"no such file: {path}")
    if path.is_dir():
        raise AdatokError(f"{path} is a folder, not an .atk file; give the path of a file")
    cap = math.inf if n_bytes is None else n_bytes

    def more(data: bytes, upto: float, cap: float = cap) -> bytes:  # (the bytes up to offset `upto`, at most `cap`)
        return data + f.read(max(0, int(min(upto, cap)) - len(data)))

    def through_header(data: bytes, cap: float = cap) -> bytes:  # (`data`, the file's first bytes, read on)
        # magic, version, and the header's length: a u16 (see adatok.core.sequence's byte layout)
        data = more(data, len(MAGIC) + 3, cap)
        if data.startswith(MAGIC) and len(data) >= len(MAGIC) + 3:  # the header and its checksum
            data = more(data, len(MAGIC) + 3 + int.from_bytes(data[len(MAGIC) + 1:len(MAGIC) + 3], "big") + 4, cap)
        return data

    try:
        with open(path, "rb") as f:
            data = through_header(b"")
            try:
                header, _ = parse_container(data)  # a wrong magic number or header ends here, as a cut one does
            except ContainerError as exc:  # (said "not an adatok container", naming no file)
                cut = len(data) == cap and _whole_header(through_header(data, math.inf))
                if cut:  # --bytes ends inside a good file's header (--bytes 0 said "wrong magic number")
                    kept = "nothing" if not n_bytes else f"only {n_bytes:,} bytes"
                    raise ContainerError(f"{path}: --bytes {n_bytes} keeps {kept}, and its header alone needs "
                                         f"{cut} bytes: give --bytes {cut} or more") from None
                raise naming_file(exc, str(path)) from None
            end = len(data) + header["payload_len"]
            data = more(data, end + 1)  # one byte past the container's end tells that the file goes on
            ended = len(data) < min(end + 1, cap) or (len(data) < end + 1 and not f.read(1))
    except OSError as exc:
        raise AdatokError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > end:
        raise ContainerError(f"{path} is longer than the {end:,}-byte container its header describes: the file is "
                             "corrupt or two files were joined")
    try:  # the payload's checksums: a damaged chunk is said with the file's name, and what is intact before it
        header, payload = parse_container(data)
    except ContainerError as exc:
        raise naming_file(exc, str(path)) from None
    return data, ended, header, payload


def _whole_header(data: bytes) -> int:
    """The length of ``data``, a container's first bytes up to its header's end, when that header is
    whole and good; else 0."""
    try:
        parse_container(data)
    except ContainerError:
        return 0
    return len(data)


def check_output(out: Path, *inputs: Path, force: bool = False, image: bool = False, one_file: bool = True) -> None:
    """Refuse to write ``out`` when it is one of the command's ``inputs`` (the same path, or the
    same file under another name: a link, ``./x``), or a file already in an input that is a folder
    (a tokenizer's checkpoint folder: ``encode IMG CKPT/model.safetensors -t CKPT`` wrote its bytes
    over the weights; by any name: a link ``x.atk`` to it), so that no command ever overwrites what
    it reads, even with ``force``. The shipped checkpoints' folder is always such an input. Without
    ``force``, also refuse token bytes (``image=False``) to a name with an image suffix
    (``photo.png``): almost always a slip of the argument order; and for a command that writes
    ``out`` as ``one_file``, a file or a symbolic link of its name already there
    (:func:`~adatok.core.imageio.check_new_file`: written with ``replace_link``, ``force`` replaces the
    link, not what it points to). An image (``image=True``) to ``.atk`` is refused even with
    ``force``: an image's format comes from its suffix."""
    from adatok.neural import CHECKPOINT_DIR

    out_path = Path(out)
    named, real = Path(os.path.abspath(out_path)), resolved(out_path)
    for src in (*inputs, CHECKPOINT_DIR):
        src_path = Path(src)
        src_real = resolved(src_path)
        if not src_path.exists():
            continue  # nothing to destroy: its reader says it is missing (--roi m.atk to m.atk was "also the input")
        for read in checkpoint_files(src_path) if src_path.is_dir() else ():
            # by its name in the folder (the file may be a link itself: a Hugging Face snapshot's), or
            # by where the output leads (a link of another name to it)
            by_name = named == Path(os.path.abspath(read))
            if by_name or real == read.resolve():
                raise AdatokError(f"{out} is {'' if by_name else 'a link to '}{read.name} of the checkpoint folder "
                                  f"{src} this command reads: writing it would destroy it; give another output path")
        same = real == src_real
        if not same and out_path.exists():
            try:
                same = os.path.samefile(out_path, src_path)
            except OSError:
                same = False
        if same:
            raise AdatokError(f"{out} is also the input {src}: writing it would destroy what this command "
                              "reads; give another output path")
    suffix = out_path.suffix.lower()
    if image and suffix == ".atk":
        raise AdatokError(f"{out} ends in .atk but would hold an image, whose format its suffix names; give an image "
                          "name (.png)")
    if not force and not image and suffix in image_suffixes():
        raise AdatokError(f"{out} has an image suffix but would hold token bytes (.atk); give a name ending in "
                          ".atk, or --force to write it anyway")
    if one_file:
        check_new_file(out, force)


def checkpoint_files(folder: Path) -> list[Path]:
    """The files of a checkpoint folder a command reads (``config.json``, ``*.safetensors``), and for
    a folder of checkpoints (the shipped ones') those of each checkpoint in it."""
    return [p for pattern in ("config.json", "*.safetensors", "*/config.json", "*/*.safetensors")
            for p in folder.glob(pattern)]


def checkpoint_inputs(tokenizer: str | None) -> list[Path]:
    """The checkpoint folder a ``--tokenizer`` names, as an input of the command (its files must not be
    written over), or nothing: a registered name (``wavelet``) is not read from a folder of that name."""
    from adatok.core.registry import registered

    if tokenizer is None or registered(tokenizer):  # (views too: wavelet-w8 is not a folder either)
        return []
    check_link_loop(Path(tokenizer))  # (is_dir said False: "unknown tokenizer")
    if not Path(tokenizer).is_dir():
        return []
    return [Path(tokenizer)]


def check_saliency(roi: Any, method: str) -> None:
    """``--saliency METHOD`` names a method, and goes with ``--roi auto`` (it was accepted and
    ignored with a mask or no region: :class:`~adatok.AdatokError`)."""
    from adatok.core.saliency import check_method

    check_method(method)
    if method != "auto" and str(roi) != "auto":
        raise BudgetError(f"--saliency {method} chooses the map of --roi auto; give --roi auto with it, or leave it out")


def budget(tokens: int | None, psnr_db: float | None, ssim: float | None, lossless: bool,
           bpp: float | None) -> adatok.Budget | None:
    """The one budget the budget options (:mod:`adatok.cli.options`) ask for (``None``: the full sequence)."""
    given = {"--tokens": tokens, "--psnr": psnr_db, "--ssim": ssim, "--lossless": lossless or None,
             "--bpp": bpp}
    given = {k: v for k, v in given.items() if v is not None}
    if len(given) > 1:
        raise BudgetError(f"give at most one budget option, got {' and '.join(given)}")
    try:
        if tokens is not None:
            return Tokens(tokens)
        if psnr_db is not None:
            return Quality(psnr=psnr_db)
        if ssim is not None:
            return Quality(ssim=ssim)
        if lossless:
            return Lossless()
        if bpp is not None:
            return Bpp(bpp)
    except BudgetError as exc:
        option, value = next(iter(given.items()))
        raise BudgetError(f"bad {option} {value}: {exc}") from exc
    return None


def check_at_least(value: int | None, option: str, least: int = 0) -> None:
    """Refuse a whole-number option below ``least`` (``None``, an option not given, passes)."""
    if value is not None and value < least:
        raise AdatokError(f"{option} needs a whole number >= {least}, got {value}")


def split_list(text: str | None, option: str, kind: type) -> list:
    """``"0.1,0.25"`` -> ``[0.1, 0.25]`` (empty or ``none`` -> ``[]``)."""
    if text is None or text.strip().lower() in ("", "none"):
        return []
    out = []
    for part in text.split(","):
        part = part.strip()
        try:
            value = kind(part)
        except ValueError:
            what = "numbers" if kind is float else "whole numbers"
            raise AdatokError(f"{option} takes {what} separated by commas, got {text!r}") from None
        out.append(value)
    return out


def shipped_checkpoints() -> list[str]:
    """The names of the shipped checkpoints that have a model card (what ``adatok info NAME`` prints)."""
    from adatok.neural import CHECKPOINT_DIR

    return sorted(p.parent.name for p in CHECKPOINT_DIR.glob("*/README.md"))


def model_card(name: str) -> str | None:
    """The summary of a shipped checkpoint's model card (``checkpoints/NAME/README.md``: its title
    and first section, up to the first ``## `` heading), or None when ``name`` is not one."""
    from adatok.neural import CHECKPOINT_DIR

    if "/" in name or "\\" in name or name.startswith("."):
        return None
    card = CHECKPOINT_DIR / name / "README.md"
    if not card.is_file():
        return None
    text = card.read_text()
    head = text.split("\n## ", 1)[0].strip()
    return head + f"\n\n(the whole card: {card})"


def read_token_file(path: Path, tokenizer: str | None, n_bytes: int | None = None,
                    max_tokens: int | None = None) -> tuple[bytes, dict, str | None, TokenSequence]:
    """A token file (its first ``n_bytes``, its first ``max_tokens`` tokens) as ``(data, header,
    cut, sequence)``, ``cut`` saying that the file itself is cut (:func:`cut_note`: also when
    ``n_bytes`` reaches past its end; ``None`` when only ``n_bytes`` cut it), for the commands that
    read one with ``--tokenizer``. That tokenizer (a
    checkpoint folder, or any tokenizer's name) is loaded first, remembered in this process so that
    files naming it are read with its weights, and a file it did not make is refused
    (:class:`~adatok.TokenizerMismatchError`): it was dropped without a word, the file read with
    the tokenizer it names."""
    tok = None
    if tokenizer is not None:
        check_link_loop(Path(tokenizer))  # (is_dir said False: "unknown tokenizer")
        tok = adatok.load(tokenizer)
    data, ended, header, payload = _read_container(path, n_bytes)
    if tok is not None:
        check_maker(header["tokenizer"], header["version"], tok, OTHER_WEIGHTS, what=str(path))
    cut = cut_note(header, payload) if ended else None
    try:
        seq = TokenSequence.from_bytes(data, max_tokens=max_tokens)
    except AdatokError as exc:  # (bad tokens, an unknown maker: said of the bytes, naming no file)
        raise naming_file(exc, str(path)) from None
    return data, header, cut, seq


def cut_note(header: dict, payload: bytes) -> str | None:
    """What ``info`` and ``decode`` say of a file whose payload is cut short; ``None`` for a whole one."""
    if len(payload) >= header["payload_len"]:
        return None
    unchecked = unchecked_bytes(header, payload)
    return (f"the file is cut: its payload holds {len(payload):,} of {header['payload_len']:,} bytes"
            + (f", the last {unchecked:,} of them in a chunk cut short, which no checksum covers" if unchecked else ""))


def fmt_psnr(value: float) -> str:
    """A PSNR with two decimals and its unit (``31.20 dB``), ``exact`` for a bit-exact image (it
    said "PSNR exact dB")."""
    return "exact" if math.isinf(value) else f"{value:.2f} dB"


def fmt_shape(shape: tuple[int, ...]) -> str:
    """``(28, 28, 1)`` -> ``28x28x1``."""
    return "x".join(str(s) for s in shape)


def file_bpp(n_bytes: int, seq: TokenSequence) -> float:
    """Bits per pixel of ``n_bytes`` bytes holding ``seq``."""
    return 8 * n_bytes / seq.num_pixels


class EvalProgress:
    """A rich progress bar on stderr (transient) for a run; it shows up with the first step, so a
    run that fails before measuring anything prints nothing but its error. Only on a terminal: on a
    file or a pipe rich shows no bar but ended it with a newline (an empty first line before a
    command's summary, or its error)."""

    def __init__(self, quiet: bool):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        console = Console(stderr=True)
        self.progress = Progress(TextColumn("{task.description:<30}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console, disable=quiet or not console.is_interactive,
                                 transient=True)
        self.task = None

    def __call__(self, done: int, total: int, what: str) -> None:
        if self.task is None:
            self.progress.start()
            self.task = self.progress.add_task(what[:30], total=total)
        self.progress.update(self.task, completed=done, total=total, description=what[:30])

    def __enter__(self) -> EvalProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.task is not None:
            self.progress.stop()


def given_options(ctx: typer.Context) -> list[str]:
    """The names of the options given on the command line (or by environment), not defaulted."""
    # (by name: typer carries a click of its own, whose ParameterSource is not click's)
    return [p for p in ctx.params if getattr(ctx.get_parameter_source(p), "name", "") in ("COMMANDLINE",
                                                                                             "ENVIRONMENT")]


def resume_overrides(ctx: typer.Context, out: Path, resumable: tuple[str, ...],
                     kept: dict[str, Callable[[dict], Any]], family: str) -> dict:
    """On --resume of a trainer that writes checkpoints of ``family`` (``"neural"``, ``"generator"``):
    the options given that a resumed run may change (``resumable``), and an error for any other option
    given with a value other than the checkpoint's (it would be silently ignored); ``kept`` reads each
    such option's value from the checkpoint's config.json. A folder that holds no checkpoint of
    ``family`` is refused first, as the trainer refuses it (its config.json has none of the settings
    compared: a raw KeyError, or another model's batch named as the checkpoint's)."""
    from adatok.neural.folder import check_fresh_start, read_json

    given = given_options(ctx)
    changed = {name: ctx.params[name] for name in given if name in resumable}
    check_fresh_start(out, resume=True, force=False, family=family)
    try:
        config = read_json(out)
    except AdatokError:
        return changed  # (no checkpoint: the trainer says so)
    flag = {p.name: p.opts[0] for p in ctx.command.params if p.opts}
    def same(name: str, have, want) -> bool:  # (a data folder, a tokenizer's folder: kept by its absolute path)
        return have == want or (name in ("data", "language") and isinstance(have, str) and isinstance(want, str)
                                and "fashion-mnist" not in (have, want) and Path(have).resolve() == Path(want).resolve())

    def held(name: str) -> Any:
        try:
            return kept[name](config)
        except (KeyError, TypeError, AttributeError, IndexError) as exc:  # (a hand-edited or other version's config)
            raise AdatokError(f"{out}/config.json cannot be resumed: it does not say its {flag[name]} "
                              f"({type(exc).__name__} {exc}); train without --resume into a new folder") from None

    clashes = [f"{flag[name]} (the checkpoint has {held(name)!r}, given {ctx.params[name]!r})"
               for name in given if name in kept and not same(name, held(name), ctx.params[name])]
    if clashes:
        raise AdatokError(f"--resume continues {out} with its own settings; these differ from it: {'; '.join(clashes)}. "
                          f"A resumed run can change only {', '.join(flag[r] for r in resumable)}; "
                          "to train otherwise, start a new folder")
    return changed
