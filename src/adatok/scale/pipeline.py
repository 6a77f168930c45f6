"""``adatok tokenize-dataset``: tokenize an image corpus into shards with Ray Data.

The driver plans the shards (:mod:`.sources`), makes the output folder and takes its lock (before
Ray starts: a folder that cannot be made, or another run's, is refused at once), writes
``manifest.json`` (status ``incomplete``, the plan), and hands the shards not yet done to a Ray
Data pipeline: a dataset of shard specs whose ``map_batches`` runs
:class:`~adatok.scale.shards.ShardWriter`, a callable class, so each worker loads the tokenizer
once and then reads, tokenizes and writes whole shards (under temporary names, then renamed). The
driver streams the shards' records back for the progress bar (a worker's error comes back as its
record, and is raised as the plain loop raises it), and when every shard is done, rewrites the
manifest with the counts and the bad inputs (status ``complete``). A run that stops early stops the
pipeline before Ray (see :func:`_run_ray`).

Resuming is running the same command again: the plan is the same, shards with a record whose
files still have the digests it keeps are skipped (any other is written again: one damaged or
replaced since), and the result is the dataset one uninterrupted run writes. Ray is started locally by
default (``num_cpus`` = workers, no dashboard, address 127.0.0.1 (Ray 2.60 still listens on every
interface: see docs/scale.md), its files under a temporary folder)
and stopped at the end; with ``address`` the run uses an existing cluster (whose workers need
adatok installed and ``out`` on a shared file system). ``workers=0`` does the same work in this
process, without Ray (the plain loop the benchmark compares with).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import adatok
from adatok import AdatokError, Budget, BudgetError, Lossless

from ..core.checks import JSON_ERRORS
from ..core.imageio import atomic_write_bytes, folder_lock, folder_problem
from ..datasets import MANIFEST, read_manifest
from .shards import FORMATS, RECORDS, ShardWriter, file_digest, shard_name, shard_path, worker_record, write_shard
from .sources import Source, open_source

#: Version of the folder layout and ``manifest.json``.
MANIFEST_FORMAT = 1

#: Images per shard unless told otherwise.
SHARD_SIZE = 1000


def budget_json(budget: Budget | None) -> dict | None:
    """A budget as JSON: its kind and fields (``None``: the full sequence)."""
    if budget is None:
        return None
    return {"kind": type(budget).__name__, **dataclasses.asdict(budget)}


def worker_reference(tokenizer: str | os.PathLike[str]) -> str:
    """How a worker loads the tokenizer: its registered name, or its checkpoint folder as an
    absolute path (a worker's working folder may not be the driver's)."""
    from ..core.registry import registered

    key = os.fspath(tokenizer)
    return key if registered(key) or not Path(key).is_dir() else str(Path(key).resolve())


def _plan_key(source: Source, specs: list[dict], tok, budget: Budget | None, formats: tuple[str, ...],
              shard_size: int, limit: int | None) -> dict:
    """What a resumed run must share with the run it resumes (the same shards, made the same way)."""
    # the listing and each input's size and time: a file changed under the same name is another source
    count = specs[-1]["stop"] if specs else 0
    listing = hashlib.sha256(json.dumps([[s["items"] for s in specs], source.fingerprint(count)]).encode()).hexdigest()
    return {"source": source.describe(), "images": specs[-1]["stop"] if specs else 0, "listing_sha256": listing, "tokenizer": tok.name,
            "version": tok.version, "budget": budget_json(budget), "formats": list(formats),
            "shard_size": shard_size, "limit": limit}


def _write_manifest(out: Path, manifest: dict) -> None:
    atomic_write_bytes(out / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())


def _done_shards(out: Path, specs: list[dict], formats: tuple[str, ...]) -> dict[int, dict]:
    """Records of the shards already written and still as written: the record of the shard the plan
    has (its images ``start..stop``) and every file present with the digest the record keeps (a shard
    whose images were all bad has no files). Any other shard is done again: a file damaged, cut
    short or replaced since (another run's shard copied over it was certified ``complete``), or a
    record written before records kept digests."""
    done = {}
    for spec in specs:
        name = shard_name(spec["shard"])
        try:
            record = json.loads((out / RECORDS / f"{name}.json").read_text())
        except (OSError, *JSON_ERRORS):
            continue  # no record (or, which atomic writes rule out, a damaged one): do the shard
        if not isinstance(record, dict) or [record.get(k) for k in ("shard", "start", "stop")] != [
                spec["shard"], spec["start"], spec["stop"]]:
            continue
        if record.get("rows") == 0 or _as_recorded(out, spec["shard"], formats, record.get("sha256")):
            done[spec["shard"]] = record
    return done


def _as_recorded(out: Path, k: int, formats: tuple[str, ...], digests) -> bool:
    """Whether shard ``k``'s file in each format is there with the digest its record keeps."""
    if not isinstance(digests, dict):
        return False
    for fmt in formats:
        path = shard_path(out, fmt, k)
        try:
            if digests.get(fmt) != file_digest(path):
                return False
        except OSError:  # gone, or unreadable
            return False
    return True


def _remove_leftovers(out: Path) -> None:
    """Temporary files of an interrupted run (``.NAME.XXXX.tmp``: see ``atomic_path``)."""
    for folder in (out / RECORDS, *(out / f for f in FORMATS)):
        for tmp in folder.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)


def _make_folders(out: Path, subs: tuple[str, ...] = ()) -> list[Path]:
    """Make the folder ``out`` (``subs``: its sub-folders of those names), with any missing parent;
    return the folders made, outermost first (for :func:`_unmake`). One that cannot be made is an
    :class:`AdatokError` that says why (DST under a file, ``/proc/x``: a raw NotADirectoryError or
    FileNotFoundError)."""
    made: list[Path] = []
    for folder in [out / sub for sub in subs] or [out]:
        missing = []
        for path in (folder, *folder.parents):
            if os.path.lexists(path):
                break
            missing.append(path)
        why = folder_problem(folder)
        if why is not None:
            raise AdatokError(f"{why}; give another output folder")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # what no check foresees (/proc takes no folder, whoever asks)
            where = next((p for p in folder.parents if os.path.lexists(p)), None)
            raise AdatokError(f"cannot make the folder {folder}: {exc.strerror or exc}"
                              f"{f' (in {where})' if where is not None else ''}; give another output folder") from None
        made += reversed(missing)
    return made


def _unmake(made: list[Path]) -> None:
    """Remove the folders :func:`_make_folders` made, innermost first, if still empty (a run refused
    before it wrote anything leaves nothing behind)."""
    for folder in reversed(made):
        with contextlib.suppress(OSError):
            folder.rmdir()


def _reachable(address: str, seconds: float = 10.0) -> None:
    """Refuse a ``HOST:PORT`` (or ``ray://HOST:PORT``) address nothing answers at: ``ray.init``
    retries such an address for minutes, printing its own warnings (``auto`` is left to Ray)."""
    import socket

    where = address.removeprefix("ray://")
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=seconds).close()
    except (OSError, ValueError) as exc:
        raise AdatokError(f"cannot connect to the Ray cluster at {address!r} (nothing answers at {where}: "
                          f"{exc.strerror or exc}); is it running (ray status), and is the address its head's "
                          "(HOST:6379, ray://HOST:10001)?") from None


def start_ray(workers: int | None, address: str | None) -> tuple[bool, str | None]:
    """Connect to Ray: the cluster at ``address``, or a local one of ``workers`` CPUs (no
    dashboard, address 127.0.0.1, its files under a new temporary folder). Returns whether this call
    started it (and must stop it) and that folder. A Ray already initialized in this process is
    used as it is."""
    import ray

    if ray.is_initialized():
        return False, None
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage reports sent anywhere
    if address is not None:
        _reachable(address)
        try:
            with warnings.catch_warnings():  # (Ray Client warns before it raises: the error below says it all)
                warnings.simplefilter("ignore")
                with _keeping_sigterm_handler():
                    ray.init(address=address, logging_level=logging.ERROR)
        except Exception as exc:  # noqa: BLE001  (Ray raises ConnectionError, ValueError, RuntimeError ...)
            raise AdatokError(f"cannot connect to the Ray cluster at {address!r} ({type(exc).__name__}: "
                              f"{str(exc).strip().splitlines()[-1] if str(exc).strip() else exc!r}); is it "
                              "running (ray status), is the address its head's (HOST:6379, ray://HOST:10001), "
                              "and if it wants a token (RAY_AUTH_MODE=token), is its token set here "
                              "(RAY_AUTH_TOKEN, or ~/.ray/auth_token) with RAY_AUTH_MODE=token?") from None
        return True, None
    tmp = tempfile.mkdtemp(prefix="adatok-ray-")
    with _keeping_sigterm_handler():
        ray.init(num_cpus=workers, include_dashboard=False, _temp_dir=tmp, _node_ip_address="127.0.0.1",
                 object_store_memory=256 * 1024**2, logging_level=logging.ERROR)
    return True, tmp


@contextlib.contextmanager
def _keeping_sigterm_handler():
    """Keep a SIGTERM handler of Python's that ``ray.init`` replaces (the command line's, which stops the
    command as Ctrl-C does: Ray's exited at once with code 15 and a stack dump of its own on stderr, without
    the clean-up that stops Ray and removes its folder, and left some of its processes running)."""
    import signal
    import threading

    before = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    try:
        yield
    finally:
        if callable(before):
            signal.signal(signal.SIGTERM, before)


def stop_ray(started: bool, tmp: str | None) -> None:
    """Undo :func:`start_ray`: shut Ray down if it was started there, remove its folder."""
    if started:
        import ray

        ray.shutdown()
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)


def _run_ray(out: Path, source: Source, todo: list[dict], tokenizer: str, budget: Budget | None,
             formats: tuple[str, ...], workers: int | None):
    """Yield the records of the shards ``todo`` as the Ray workers (of the Ray this process is
    connected to) finish them; a worker's error is raised (:func:`~.shards.worker_record`). Closing
    the generator (the caller does, before :func:`stop_ray`) stops the pipeline."""
    import ray
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver draws its own
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    size = min(len(todo), workers or max(1, int(ray.cluster_resources().get("CPU", 1))))  # no idle actors
    ds = ray.data.from_items(todo, override_num_blocks=len(todo))
    ds = ds.map_batches(ShardWriter, batch_size=1, batch_format="numpy", num_cpus=1,
                        compute=ray.data.ActorPoolStrategy(size=size),
                        fn_constructor_kwargs=dict(out=str(out), source=source.describe(), tokenizer=tokenizer,
                                                   budget=budget, formats=formats))
    rows = iter(ds.iter_rows())
    before = set(threading.enumerate())
    try:
        for row in rows:
            yield worker_record(row["record"])  # (a worker's error raised here, as the plain loop raises it)
    finally:
        # Stop Ray Data now, before stop_ray shuts Ray down: left to the garbage collector (an interrupted
        # run, a worker's error), its threads went on, one of them called Ray after the shutdown, and Ray's
        # automatic ray.init started a new default cluster (a dashboard, its GCS on every interface) whose
        # agents outlived the command. Closing the rows stops the executor (joining its thread); its other
        # threads end just after.
        rows.close()
        _wait_for_threads(set(threading.enumerate()) - before)


#: Threads of Ray Data's that outlive a stopped pipeline, parked: its block prefetcher waits, until its
#: iterator is collected, for blocks that only the pipeline's own threads (ended) hand it.
_PARKED_THREADS = ("Prefetcher",)


def _wait_for_threads(threads: set[threading.Thread], seconds: float = 5.0) -> None:
    """Wait up to ``seconds`` in all for ``threads`` (those a Ray Data pipeline started) to end, but
    for the parked ones (:data:`_PARKED_THREADS`)."""
    deadline = time.monotonic() + seconds
    for thread in threads:
        if thread.name not in _PARKED_THREADS:
            thread.join(max(0.0, deadline - time.monotonic()))


def tokenize_dataset(src: str | os.PathLike[str], out: str | os.PathLike[str], tokenizer: str = "wavelet",
                     budget: Budget | None = None, *, workers: int | None = None, address: str | None = None,
                     formats: tuple[str, ...] = ("parquet",), shard_size: int = SHARD_SIZE, limit: int | None = None,
                     image_column: str | None = None, label_column: str | None = None, labels: str | None = None,
                     command: str | None = None, progress: Callable[[int, int, str], None] | None = None) -> dict:
    """Tokenize every image of ``src`` into shards under ``out``; return the manifest.

    Args:
        src: a folder of image files (recursively), a Parquet file or folder of them with an
            image-bytes column, or ``"fashion-mnist"`` (70,000 images, with labels).
        out: the output folder: ``parquet/part-NNNNN.parquet`` (``webdataset/part-NNNNN.tar``),
            ``_shards/`` (each shard's record), ``manifest.json``. A folder holding an unfinished run of the same arguments is resumed.
        tokenizer: a tokenizer name or checkpoint folder (:func:`adatok.load`).
        budget: each sequence's length (``None``: the full sequence).
        workers: Ray workers (default: every CPU of the local machine or the cluster); ``0``: no
            Ray, this process alone.
        address: an existing Ray cluster (``ray://HOST:10001``, ``auto``); default a local Ray,
            started and stopped here.
        formats: ``"parquet"`` and/or ``"webdataset"``.
        shard_size: images per shard.
        limit: only the first ``limit`` images of the source.
        image_column, label_column: the columns of a Parquet source (default: found by name).
        labels: a folder of image files: ``"folders"`` labels each image by its class sub-folder
            (``FOLDER/CLASS/...``, the classes sorted and numbered from 0, their names in the
            manifest's ``plan.source.classes``), ``"none"`` or ``None`` gives no labels.
        command: the command line to record in the manifest.
        progress: called as ``progress(images done, images in all, what)`` as shards finish.

    Raises:
        AdatokError: a source that cannot be read, an unknown tokenizer, a budget the tokenizer
            cannot meet, an ``out`` that holds something else (another run, other files), that
            cannot be made, or that another run is writing now (each before Ray starts), a shard
            that cannot be written (by a Ray worker too: the same error).
    """
    unknown = [f for f in formats if f not in FORMATS]
    formats = tuple(f for f in FORMATS if f in formats)  # each once, in one order (a resumed run gives any)
    if unknown or not formats:
        raise AdatokError(f"unknown format {unknown[0] if unknown else '(none)'!r}: use {' or '.join(FORMATS)}")
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise AdatokError(f"the shard size must be a whole number >= 1, got {shard_size!r}")
    if workers is not None and workers < 0:
        raise AdatokError(f"workers must be 0 (no Ray) or more, got {workers}")
    if workers == 0 and address is not None:
        raise AdatokError("workers=0 runs without Ray; give workers >= 1 (or none) with an address")
    tok = adatok.load(tokenizer)
    if isinstance(budget, Lossless) and not getattr(tok, "lossless", False):
        raise BudgetError(f"{tok.name!r} is not lossless; use wavelet-lossless for a lossless budget")
    out = Path(out).resolve()  # the workers' working folder may be another (a cluster's nodes)
    source = open_source(src, image_column, label_column, exclude=out, labels=labels)  # (a link under src may lead into out)
    specs = source.plan(shard_size, limit)
    root = getattr(source, "root", None)
    if root is not None and root.is_dir() and out.is_relative_to(root):
        raise AdatokError(f"the output folder {out} is inside the source folder {root}: a second run (or a "
                          "resumed one) would read its shards as inputs; give an output folder outside it")
    worker_tokenizer = worker_reference(tokenizer)
    plan = _plan_key(source, specs, tok, budget, formats, shard_size, limit)
    previous = read_manifest(out)
    if previous is not None and previous.get("plan") != plan:
        raise AdatokError(f"{out} holds the shards of another run (other source or labels, tokenizer, budget, formats, shard "
                          "size or limit, or the source changed since, or it was planned by an adatok before "
                          "2026-11-30, which did not note its files' sizes and times); give another output folder "
                          "or remove it")
    if previous is None and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise AdatokError(f"{out} exists and is not an output folder of adatok tokenize-dataset; give a new or "
                          "empty folder")
    done = _done_shards(out, specs, formats)
    todo = [s for s in specs if s["shard"] not in done]
    use_ray = bool(todo) and workers != 0
    with contextlib.ExitStack() as hold:  # the folder's lock, held to the end of the run
        # The folders and the lock before Ray starts (a DST that cannot be made was a raw NotADirectoryError once
        # Ray had started; a second run into DST was refused only after its Ray had started, seconds later), and
        # the manifest after (a cluster that cannot be reached: nothing written, the folders made removed).
        made = _make_folders(out)
        # one run at a time in a folder: two at once removed each other's temporary files as leftovers,
        # and one of them failed with "cannot write ...: No such file or directory"
        hold.enter_context(folder_lock(out, "another adatok tokenize-dataset", wait=0))
        try:
            if read_manifest(out) != previous:  # (another run began or ended it between the checks and the lock)
                raise AdatokError(f"another adatok tokenize-dataset wrote into {out} meanwhile; run the command again "
                                  "to go on from what is written")
            made += _make_folders(out, (RECORDS, *formats))
            started, tmp = start_ray(workers, address) if use_ray else (False, None)
        except BaseException:
            _unmake(made)
            raise
        try:
            _remove_leftovers(out)
            manifest = {"format": MANIFEST_FORMAT, "status": "incomplete", "command": command,
                        "adatok_version": adatok.__version__, "plan": plan,
                        "tokenizer": {"name": tok.name, "version": tok.version, "vocab_size": int(tok.vocab_size),
                                      "reference": worker_tokenizer},
                        "budget": budget_json(budget), "formats": list(formats)}
            if previous is None:
                _write_manifest(out, manifest)
            total = plan["images"]
            finished = sum(r["stop"] - r["start"] for r in done.values())
            if progress is not None:
                progress(finished, total, f"{len(done)}/{len(specs)} shards")
            t0 = time.perf_counter()
            if use_ray:
                records = _run_ray(out, source, todo, worker_tokenizer, budget, formats, workers)
            else:
                records = (write_shard(out, source, spec, tok, budget, formats) for spec in todo)
            try:
                for record in records:
                    done[record["shard"]] = record
                    finished += record["stop"] - record["start"]
                    if progress is not None:
                        progress(finished, total, f"{len(done)}/{len(specs)} shards")
            finally:
                records.close()  # (now, not when collected: Ray Data stopped before Ray is, see _run_ray)
            seconds = time.perf_counter() - t0
        finally:
            stop_ray(started, tmp)
        # once more at the end: a worker of an interrupted run that Ray had not yet stopped when this run
        # began could still create a temporary file after the cleanup above (seen once in 939 tests)
        _remove_leftovers(out)

        records = [done[s["shard"]] for s in specs]
        bad = [{"source": b[0], "reason": b[1]} for r in records for b in r["bad"]]
        manifest.update(status="complete", counts={
            "images": total, "written": sum(r["rows"] for r in records), "bad": len(bad), "shards": len(specs),
            "tokens": sum(r["tokens"] for r in records), "resumed_shards": len(specs) - len(todo)},
            bad=bad, shards=[{"name": shard_name(r["shard"]), "rows": r["rows"], "start": r["start"], "stop": r["stop"],
                              "sha256": r.get("sha256", {})} for r in records],  # (none in a record of bad
                                                                                  # inputs only from before 2026-12-01)
            last_run={"workers": workers, "address": address, "seconds": round(seconds, 2)})
        _write_manifest(out, manifest)
    return manifest
