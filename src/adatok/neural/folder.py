"""Checkpoint folders, for every model the project trains (the learned tokenizer, the generators,
the judge): ``config.json`` (what the model is and how it was trained), ``model.safetensors``
(the weights) and, while training, ``train_state.safetensors`` (AdamW's moments and the random
states, for resuming). Never pickles. Every file is written under a temporary name and renamed,
so a folder is never half-written."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save_file

from ..core.checks import JSON_ERRORS
from ..core.imageio import atomic_writes, folder_lock, folder_problem
from ..core.errors import AdatokError

T = TypeVar("T")


def check_overrides(overrides: dict | None, resume: bool, resumable: tuple[str, ...]) -> dict:
    """The training settings a trainer's resumed run changes (``overrides``), checked: only for a
    resumed run, and only those of ``resumable`` (the rest is the checkpoint's)."""
    if overrides and not resume:
        raise AdatokError("overrides are for a resumed run; give a new run its settings in train_cfg")
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(resumable))
    if unknown:
        raise AdatokError(f"a resumed run keeps its checkpoint's {', '.join(unknown)}; it can change only "
                          f"{', '.join(resumable)}")
    return overrides


#: What marks a folder as holding a checkpoint (a run that saved at least once).
CHECKPOINT_FILES = ("config.json", "model.safetensors")

#: The families of checkpoint the project writes (``config.json``'s ``"family"``), each as its messages name it.
FAMILIES = {"neural": "learned tokenizer", "generator": "generator", "judge": "judge"}


def _held_family(folder: Path) -> str:
    """The family of the checkpoint in ``folder`` (a key of :data:`FAMILIES`), read from its
    ``config.json``; an :class:`AdatokError` when the folder holds checkpoint files
    (:data:`CHECKPOINT_FILES`) that are no adatok checkpoint: a ``config.json`` that cannot be read,
    is not a JSON object or names no family of the project's, or weights without a ``config.json``."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise AdatokError(f"{folder} holds a model.safetensors without a config.json, which is not an adatok "
                          "checkpoint: give another --out")
    try:
        config = json.loads((folder / "config.json").read_text())
    except OSError as exc:
        why = f"it cannot be read: {exc.strerror or exc}"
    except JSON_ERRORS:
        why = "it is not JSON"
    else:
        family = config.get("family") if isinstance(config, dict) else None
        if isinstance(family, str) and family in FAMILIES:
            return family
        why = ("it is not a JSON object" if not isinstance(config, dict) else "it names no family" if family is None
               else f"its family {str(family)[:40]!r} is none of adatok's")
    raise AdatokError(f"{folder} holds a config.json that is not an adatok checkpoint ({why}): give another --out")


def check_fresh_start(out: Path, resume: bool, force: bool, family: str) -> None:
    """Before a training run writes a checkpoint of ``family`` (a key of :data:`FAMILIES`) into
    ``out``: refuse a folder that holds a checkpoint already (its model would be replaced, and a run
    of other settings would mix with it), unless ``resume`` (the caller continues it) or ``force``
    (start over: the run's saves replace its files). A folder whose checkpoint files are not a
    checkpoint of ``family`` (another family's: a shipped generator copied; files of the user's own
    that are no adatok checkpoint) is refused even so: neither continuing nor replacing it is the
    run's to do. ``force`` removes nothing itself: the run's saves rewrite the checkpoint's files (a
    generator's run also its token caches, or takes them as they are when made from the same data),
    and every other file in the folder stays."""
    if resume and force:
        raise AdatokError("--resume continues the checkpoint in --out, --force starts over and replaces it: give one, "
                          "not both")
    if Path(out).exists() and not Path(out).is_dir():
        raise AdatokError(f"{out} is a file, not a folder: give a folder (new or holding a checkpoint) as --out")
    check_writable_folder(out)
    if not any((Path(out) / f).is_file() for f in CHECKPOINT_FILES):
        return
    held = _held_family(out)
    what = FAMILIES[family]
    if held != family:
        raise AdatokError(f"{out} holds a {FAMILIES[held]}'s checkpoint, and this run trains a {what}: give another "
                          "--out")
    if not (resume or force):
        raise AdatokError(f"{out} holds a checkpoint already (a {what}'s): continue it with --resume, start over and "
                          "replace it with --force, or give another --out")


def check_writable_folder(out: Path) -> None:
    """Refuse, before any work, a folder ``out`` that a run could not save into
    (:func:`adatok.core.imageio.folder_problem`: ``--out photo.png/run``, a link to nothing, no
    permission). Nothing is made: a new folder is made at the run's first save (the run found this
    out there, after all its training, as a raw NotADirectoryError)."""
    why = folder_problem(out)
    if why is not None:
        raise AdatokError(f"{why}; give another --out")


def hold_run_folder(hold: contextlib.ExitStack, out: Path, resume: bool, force: bool, family: str) -> None:
    """Hold the folder ``out`` (it exists) for the rest of a training run (until ``hold`` closes), so
    that a second run into it at the same time is refused (:class:`AdatokError`) instead of saving over
    the first's checkpoints (each save alone was locked, and the last run to save won). Under the hold,
    the folder is checked again as :func:`check_fresh_start` does (for a checkpoint of ``family``): a
    run that found it empty refuses the checkpoint another run saved there meanwhile."""
    hold.enter_context(folder_lock(out, "another training run", wait=0))
    check_fresh_start(out, resume, force, family)


def allocated(make: Callable[[], T], size: str, smaller: str) -> T:
    """``make()``, a new model; one torch cannot allocate (``--dim 1000000``: a RuntimeError or
    MemoryError) as an :class:`AdatokError` naming its ``size`` and the options to make ``smaller``."""
    try:
        return make()
    except (RuntimeError, MemoryError) as exc:
        raise AdatokError(f"cannot make a model of {size} ({type(exc).__name__}: {str(exc)[:120]}): give a "
                          f"smaller {smaller}") from None


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is running out of memory: Python's MemoryError, or torch's RuntimeError ("...
    can't allocate memory ...", "DefaultCPUAllocator: not enough memory")."""
    return isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and "alloc" in str(exc).lower())


@contextlib.contextmanager
def held_interrupts():
    """Hold the signals that stop a training run (SIGINT, SIGTERM, SIGHUP) while the block runs, then
    act on the first one as it would have been acted on: for a trainer's update of the weights and
    its step count, which an interrupt must find both done or both not (cut between them, or inside
    the optimizer's step, a resumed run applied a step twice, or half of one, and ended with other
    weights than a run never stopped: an outside-user review). Only in the main thread (where
    Python runs signal handlers); elsewhere the block runs as it is."""
    import os
    import signal
    import threading

    kinds = [s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    before = {s: signal.signal(s, lambda signum, frame: got.append(signum)) for s in kinds}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
        if got:
            handler = before[got[0]]
            if callable(handler):
                handler(got[0], None)  # (Python's SIGINT handler, or the command line's: a KeyboardInterrupt)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), got[0])


def weights_digest(path: Path) -> str:
    """First 8 hex digits of the SHA-256 of a weights file (part of a tokenizer's version)."""
    return _digest(Path(path).read_bytes())


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:8]


def write_folder(out: Path, model: torch.nn.Module, config: dict, optimizer: torch.optim.Optimizer | None = None,
                 generator: torch.Generator | None = None) -> None:
    """Write ``model``'s weights, ``config`` as ``config.json``, and with ``optimizer`` the training
    state (its moments, torch's random state and ``generator``'s) into the folder ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    files = [(out / "model.safetensors", lambda p: save_file(state, str(p)))]
    if optimizer is not None:
        tensors = {"rng": torch.get_rng_state()}
        if generator is not None:
            tensors["data_rng"] = generator.get_state()
        for i, p in enumerate(model.parameters()):
            st = optimizer.state.get(p, {})
            for key in ("exp_avg", "exp_avg_sq"):
                if key in st:
                    tensors[f"opt.{i}.{key}"] = st[key].contiguous()
            if "step" in st:
                tensors[f"opt.{i}.step"] = torch.as_tensor(st["step"], dtype=torch.float32).reshape(1)
        files.append((out / "train_state.safetensors", lambda p: save_file(tensors, str(p))))
    written: dict[str, Path] = {}  # each file's temporary file (atomic_writes names them), by its name

    def noting(path: Path, write: Callable[[Path], None]) -> tuple[Path, Callable[[Path], None]]:
        def wrapped(tmp: Path) -> None:
            write(tmp)
            written[path.name] = tmp
        return path, wrapped

    files = [noting(path, write) for path, write in files]

    def write_config(p: Path) -> None:  # with the digests of the files written before it (their temporary files)
        digests = {name: weights_digest(tmp) for name, tmp in written.items()}
        p.write_text(json.dumps({**config, SAVED_TOGETHER: digests}, indent=2) + "\n")

    files.append((out / "config.json", write_config))
    # one save at a time into a folder; under the lock, the temporary files of a save killed outright
    # (SIGKILL, the OOM killer: no clean-up ran) are its own to remove: a weights-sized hidden file piled up
    # at each such kill (no other save can be writing them)
    with folder_lock(out, "another run saving a checkpoint", wait=120.0):
        for path, _ in files:
            for stale in out.glob(f".{glob.escape(path.name)}.*.tmp"):
                if STALE.fullmatch(stale.name[len(path.name) + 1:]):
                    stale.unlink(missing_ok=True)
        # the weights, the training state and the config of one step: never of two (renamed one by one, the
        # files of a save interrupted between two renames are told apart by the digests in config.json)
        atomic_writes(files, mode=0o644)  # (safetensors writes 0600)


#: The tail of a temporary file :func:`~adatok.core.imageio.atomic_writes` makes (``.NAME`` before it).
STALE = re.compile(r"\.[0-9a-f]{8}\.tmp")


#: The key of config.json under which a save records the digests of the files it wrote with it.
SAVED_TOGETHER = "files"


def check_saved_together(folder: Path, digests: dict[str, str]) -> None:
    """Refuse a file of ``folder`` (``digests``: its name and the digest of its bytes) whose digest is
    not the one its ``config.json`` recorded (a save interrupted between its renames: the weights of
    one step beside the config and training state of another), when a run is resumed from it.
    Folders written before the digests were recorded pass; loading a model alone does not check
    (weights put in a folder by hand load)."""
    try:
        recorded = json.loads((Path(folder) / "config.json").read_text()).get(SAVED_TOGETHER, {})
    except (OSError, *JSON_ERRORS, AttributeError):
        return  # (a config that cannot be read is refused where it is read)
    if not isinstance(recorded, dict):
        return
    for name, digest in digests.items():
        if recorded.get(name) not in (None, digest):
            raise AdatokError(f"{Path(folder) / name} is not the file its config.json was saved with (a save was "
                              "interrupted): the folder mixes two steps; train again, or resume from a copy")


def read_json(folder: Path) -> dict:
    """A folder's ``config.json`` (AdatokError if missing or not JSON)."""
    try:
        config = json.loads((Path(folder) / "config.json").read_text())
        if not isinstance(config, dict):
            raise ValueError("not an object")
    except (OSError, *JSON_ERRORS) as exc:
        raise AdatokError(f"{folder} is not a checkpoint folder: its config.json cannot be read ({exc})") from None
    return config


def read_weights(folder: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The tensors of ``folder/model.safetensors`` and the :func:`weights_digest` of the very bytes
    they came from: the file is read once (read twice, a training run saving between the reads gave
    a tokenizer whose version named the other weights)."""
    path = Path(folder) / "model.safetensors"
    if not path.is_file():
        raise AdatokError(f"{folder} has no model.safetensors: the checkpoint is incomplete")
    return _read_tensors(path)


def unseeded(make):
    """``make()`` (a model's constructor, whose random initial weights a checkpoint's replace) run
    without drawing from torch's global random generator: loading a checkpoint
    (``adatok.load("fashion-mnist-32")``, a generator, a judge) left a user's seeded code drawing
    other numbers after it than before."""
    with torch.random.fork_rng(devices=[]):
        return make()


def load_weights(folder: Path, model: torch.nn.Module, tensors: dict | None = None) -> torch.nn.Module:
    """Load ``folder/model.safetensors`` (or ``tensors`` read from it by :func:`read_weights`) into
    ``model`` (AdatokError if missing or of another shape); returns it in eval mode."""
    path = Path(folder) / "model.safetensors"
    if tensors is None:
        tensors = read_weights(folder)[0]
    try:
        model.load_state_dict(tensors)
    except (RuntimeError, OSError, ValueError) as exc:
        raise AdatokError(f"{path} does not fit its config.json ({str(exc)[:200]})") from None
    return model.eval()


def _read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """A safetensors file's tensors and the digest of its bytes, from one read (AdatokError if
    missing, truncated or not safetensors)."""
    try:
        data = path.read_bytes()
        return load(data), _digest(data)
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as exc:  # (KeyError: a dtype torch lacks)
        raise AdatokError(f"{path} cannot be read: it is incomplete or corrupt ({str(exc)[:200]})") from None


def restore_training(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                     generator: torch.Generator) -> None:
    """Put back what :func:`write_folder` saved with an optimizer: AdamW's moments and the random
    states, so that a resumed run goes on as the interrupted one would have."""
    path = Path(folder) / "train_state.safetensors"
    tensors, digest = _read_tensors(path)
    if "rng" not in tensors:
        raise AdatokError(f"{path} is not a training state of adatok (it has no random state): it cannot be resumed")
    # everything checked before anything is set (a state that failed half-way had changed torch's random state)
    rng_len = torch.get_rng_state().numel()
    bad = [name for name in ("rng", "data_rng") if name in tensors
           and (tensors[name].dtype != torch.uint8 or tensors[name].numel() != rng_len)]
    state = {}
    for i, p in enumerate(model.parameters()):
        if f"opt.{i}.exp_avg" in tensors:
            parts = [tensors.get(f"opt.{i}.{k}") for k in ("exp_avg", "exp_avg_sq", "step")]
            if any(t is None for t in parts) or parts[0].shape != p.shape or parts[1].shape != p.shape \
                    or parts[2].numel() < 1:
                bad.append(f"opt.{i}")
                continue
            state[p] = {"exp_avg": parts[0].clone(), "exp_avg_sq": parts[1].clone(),
                        "step": torch.tensor(float(parts[2].reshape(-1)[0]))}
    if bad:
        raise AdatokError(f"{path} is not a training state of this checkpoint ({', '.join(bad[:3])} missing or of "
                          "another shape): it cannot be resumed; start a new folder, or give --force")
    # a state of the weights' own save (loading alone takes weights put in by hand; a resume needs the three of
    # one step)
    check_saved_together(folder, {path.name: digest,
                                  "model.safetensors": weights_digest(Path(folder) / "model.safetensors")})
    torch.set_rng_state(tensors["rng"])
    if "data_rng" in tensors:
        generator.set_state(tensors["data_rng"])
    optimizer.state.update(state)
