"""The FastAPI application of ``adatok serve``: one static page and a small JSON / binary API over
the library (:mod:`adatok.serve.state` holds what the requests work on).

Every refused request gets a 4xx (503 when the server is busy or the work ran past the time limit)
with a JSON body ``{"error": "<what was wrong and what to do>"}`` the page shows as it is; a bug
gets a 500 with a one-line message, never a stack trace (the trace goes to the server's log).
Only this machine's names (and ``--host``) are answered, and a POST sent by another site's page is
refused (:func:`create_app`); a request's work stops once the request has ended
(:meth:`Server._bounded`).

The API (``{iid}``: an image id, ``{cid}``: a coding id, ``{jid}``: a job id):

=====================================  =========================================================
``GET /``                              the page (``static/index.html``; ``/static/...`` its files)
``GET /api/info``                      tokenizers, sample images, generators, classes, limits
``POST /api/images``                   upload an image (multipart ``file``) -> image
``POST /api/samples/{name}``           a bundled sample photo or ``fashion-mnist-C`` -> image
``GET /api/images/{iid}.png``          the image as PNG
``POST /api/codings``                  form ``image``, ``tokenizer``, ``roi`` (``none``, ``auto``,
                                       a saliency method, or ``paint`` with a ``mask`` PNG)
                                       -> coding: the full sequence, encoded once
``GET /api/codings/{cid}/frame``       ``?tokens=K`` / ``?bytes=N`` / ``?psnr=DB``: the prefix's
                                       pixels (raw ``H x W x C`` bytes) with its numbers in the
                                       ``X-Adatok-Frame`` header (JSON)
``GET /api/codings/{cid}/details``     ``?tokens=K``: SSIM, error map, token heat map (JSON)
``GET /api/codings/{cid}/curve``       PSNR against bytes: the prefixes, JPEG, WebP, JPEG 2000
``GET /api/codings/{cid}/compare``     ``?bytes=N``: inside / outside PSNR with and without the
                                       region (a coding with ``roi``)
``GET /api/codings/{cid}/prefix.atk``  the ``.atk`` file of the prefix (same query as frame)
``GET /api/codings/{cid}/prefix.png``  its image as PNG
``POST /api/jobs/generate``            form ``model``, ``label``, ``n``, ``seed``, ``cfg``,
                                       ``max_tokens`` (optional: tokens the model writes) -> job
``POST /api/jobs/complete``            the same and a cut ``.atk`` (multipart ``file``) -> job
``GET /api/jobs/{jid}/events``         the job's progress, as server-sent events
=====================================  =========================================================

Every ``GET`` route answers ``HEAD`` too (a GET's headers, no body; a job's events are left to
the first GET); any other method gets 405 with an ``Allow`` header. A ``POST``'s fields come as a
form (``application/x-www-form-urlencoded``, or ``multipart/form-data``, which a file needs): a body
of another type is 415, and a field left empty, sent twice or unknown to the route is 422
(:func:`checked_form`), as is a query parameter the route does not read or one given twice
(:func:`checked_query`). An
image's answer says whether its transparency was flattened onto white (``"flattened"``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote, urlsplit

import numpy as np
from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import URL, Headers
from starlette.datastructures import UploadFile as FormFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

import adatok
from adatok import AdatokError, TokenSequence
from adatok.core.checks import JSON_ERRORS

from . import state
from .state import (BadField, Busy, Coding, Gone, Image, Job, Limits, NotFound, OutOfRange, ServeError, TooLarge,
                    WrongType)

STATIC = Path(__file__).resolve().parent / "static"
CHECKPOINTS = Path(adatok.__file__).resolve().parent / "checkpoints"
log = logging.getLogger("adatok.serve")
#: Seconds between two checks of whether a request's client is still there (while its work runs).
POLL = 0.25


class Server:
    """What one app works with: its limits, stores, executors and generator list."""

    def __init__(self, limits: Limits, generators: Sequence[str | Path] | None) -> None:
        self.limits = limits
        self.images = state.Store(limits.images, "image", "load the image again")
        self.codings = state.Store(limits.codings, "coding", "encode the image again")
        self.jobs = state.Store(32, "job", "start a new job")
        self.slots = threading.BoundedSemaphore(limits.encoders)
        self.gen_slots = threading.BoundedSemaphore(limits.generations)
        self.heavy = ThreadPoolExecutor(max_workers=limits.encoders + 8, thread_name_prefix="adatok-encode")
        self.light = ThreadPoolExecutor(max_workers=4, thread_name_prefix="adatok-frame")
        self._generator_specs = None if generators is None else [str(g) for g in generators]
        self._generators: dict[str, object] = {}
        self._gen_lock = threading.Lock()

    # --- work in threads, bounded ---------------------------------------------------------------

    async def run_heavy(self, request: Request | None, work: Callable[[Callable[[], None]], object]):
        """``work(stop)`` in a thread once one of the ``encoders`` slots is free: encodes, curves,
        comparisons, a prefix's details and downloads (see :meth:`_bounded`). 503 when no slot frees
        up within the time limit. Work whose request has ended (answered 503, or the client gone)
        before it got a slot is not started: a thread that began waiting late (queued behind others)
        waited a whole time limit of its own and then encoded for nobody, the slot held from the
        requests still waiting."""
        return await self._bounded(self.heavy, work, request, self.slots)

    async def run_light(self, request: Request | None, work: Callable[[Callable[[], None]], object]):
        """``work(stop)`` on one of the 4 frame threads (reading an upload, a frame, a PSNR target's
        search), under the same time limit and stopped as :meth:`run_heavy`'s, without a slot."""
        return await self._bounded(self.light, work, request)

    async def _bounded(self, executor, work, request: Request | None, slots=None):
        """Run ``work(stop)`` on ``executor`` (holding one of ``slots`` while it runs, if given) and
        answer with its result, or 503 once the time limit has passed. The request ends when it is
        answered, runs past the time limit, or its client has gone (checked every
        :data:`POLL` seconds: Starlette does not cancel a request whose client hung up); from then
        on ``stop()`` raises :class:`~adatok.serve.state.Cancelled`, so work that calls it between
        its steps ends at the next one (a step itself, an encode above all, runs to its end, its slot
        held: until 2026-12-03 all of it did, e.g. a PSNR target's search for up to a minute after
        its 503, and the details of a prefix after the page had gone), and work not yet started is
        never started."""
        limits = self.limits
        deadline = time.monotonic() + limits.seconds
        ended = threading.Event()

        def stop() -> None:
            if ended.is_set():
                raise state.Cancelled

        def task():
            # a slot, waited for while the request lasts (a thread waiting on for a request that had ended
            # was one fewer for those still waiting)
            while slots is not None and not slots.acquire(timeout=min(POLL, max(deadline - time.monotonic(), 0))):
                stop()
                if time.monotonic() >= deadline:
                    raise Busy(f"the server is busy ({limits.encoders} encodes running for {limits.seconds:g} s): "
                               "try again in a moment")
            try:
                stop()  # (the request ended before its work started: there is no one to answer)
                return work(stop)
            finally:
                if slots is not None:
                    slots.release()

        future = asyncio.get_running_loop().run_in_executor(executor, task)
        try:
            while True:
                left = deadline - time.monotonic()
                done, _ = await asyncio.wait({future}, timeout=max(min(left, POLL), 0))
                if done:
                    return future.result()
                if time.monotonic() >= deadline:
                    raise Busy(f"this took longer than the server's time limit of {limits.seconds:g} s: try a "
                               "smaller image, or again when the server is less busy")
                if request is not None and await request.is_disconnected():
                    raise Gone("the client closed the request before its answer was ready")
        finally:
            ended.set()  # (answered, timed out, client gone or cancelled: the work stops at its next step)
            future.cancel()  # (its result, if it comes, is for no one)

    # --- tokenizers and generators ---------------------------------------------------------------

    def tokenizers(self) -> list[str]:
        from adatok.core.registry import names

        return names()

    def check_tokenizer(self, name: str) -> str:
        known = self.tokenizers()
        if name not in known:  # (a name only: never a folder given by a request)
            raise ServeError(f"unknown tokenizer {state.shown(name)}: choose one of {', '.join(known)}")
        return name

    def generator_specs(self) -> list[str]:
        """The generators offered: those given, else the shipped ones (checkpoint folders of the package
        whose config names the family "generator"; found without importing torch, which only a
        generation loads)."""
        if self._generator_specs is None:
            found = [f.name for f in sorted(CHECKPOINTS.iterdir()) if _config(f).get("family") == "generator"]
            self._generator_specs = found if _has_torch() else []
        return self._generator_specs

    def generator_list(self) -> list[dict]:
        specs = self.generator_specs()
        if not specs:
            return []
        from adatok.generate.folders import generator_folder  # (torch-free) the folder the loader takes: a folder
        # of samples named like a shipped generator in the working directory was listed in its place

        def folder_of(spec) -> Path:
            try:
                return generator_folder(spec)
            except AdatokError:  # (a folder gone since the start: listed as it was given, its jobs refused alone)
                return Path(spec)

        folders = [folder_of(spec) for spec in specs]
        named = Counter(f.name for f in folders)
        out = []
        for spec, folder in zip(specs, folders, strict=True):
            lang = _config(folder).get("language", {})
            out.append({"id": folder.name if named[folder.name] == 1 else spec,  # (two folders named alike: by path)
                        "language": lang.get("language"), "tokenizer": lang.get("tokenizer"),
                        "shape": lang.get("shape")})
        return out

    def generator(self, model: str):
        """The generator the page calls ``model`` (one of :meth:`generator_list`), loaded once."""
        specs = {g["id"]: s for g, s in zip(self.generator_list(), self.generator_specs())}
        if model not in specs:
            raise ServeError(f"unknown generator {state.shown(model)}: choose one of "
                             f"{', '.join(specs) or '(none installed)'}")
        with self._gen_lock:
            if model not in self._generators:
                from adatok.generate.sample import load_generator

                self._generators[model] = load_generator(specs[model])
            return self._generators[model]


# --------------------------------------------------------------------------------------------
# Errors as JSON in words
# --------------------------------------------------------------------------------------------


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": " ".join(str(message).split())}, status_code=status,
                        headers={**(headers or {}), "Cache-Control": "no-store"})


#: What a form field's text stands for, in a message (by the field's name; else by its type).
FIELD_WORDS = {"image": "an image id", "tokenizer": "a tokenizer's name", "roi": "none, paint or a saliency method",
               "model": "a generator's id"}


def _validation_message(exc: RequestValidationError, files: set[str] = frozenset()) -> str:
    """The validation errors in words; ``files``: the request's file fields (a text sent in one was
    told pydantic's "Value error, Expected UploadFile, received: <class 'str'>", and a file sent in
    a text field its Python repr: "got UploadFile(filename='a.png', size=..., headers=...")."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "body", "path", "form"))
        value = err.get("input")
        msg = err.get("msg", "is invalid")
        kind = err.get("type", "")
        if where in files and kind != "missing":
            parts.append(f"{where}: expected a file (a part of a multipart form with a file name), got "
                         f"{'text' if isinstance(value, str) else 'something else'}")
            continue
        if isinstance(value, FormFile):
            what = FIELD_WORDS.get(where) or ("a whole number" if kind.startswith("int") else
                                              "a number" if kind.startswith("float") else None)
            parts.append(f"{where}: expected {what + ' (text)' if what else 'text'}, got a file")
            continue
        parts.append(f"{where or 'the request'}: {msg}" + (f" (got {state.shown(value)})" if
                                                           isinstance(value, str | int | float) else ""))
    return "; ".join(parts) or "the request is invalid"


def _form_fields(request: Request) -> list:
    """The form fields (``Form(...)`` and ``File(...)``: pydantic's fields) of the route ``request``
    went to, in their order."""
    dependant = getattr(request.scope.get("route"), "dependant", None)
    return list(getattr(dependant, "body_params", ()))


def _file_fields(request: Request) -> set[str]:
    """The names of the file fields (``File(...)``) of the route ``request`` went to."""
    from fastapi import params

    return {f.alias for f in _form_fields(request) if isinstance(f.field_info, params.File)}


#: The content types a form comes in; a file needs the first.
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


async def checked_form(request: Request) -> None:
    """Refuse a request to a route with form fields whose form would be read wrongly, before its
    fields are: a body that is not a form (415: the form parser finds no field in it, and each was
    told "Field required"), a field left empty (422: FastAPI takes an empty value for a field left
    out, so ``tokenizer=`` encoded with the default and ``max_tokens=`` wrote without a cap) or given
    more than once (422: the last one was taken). A dependency of every route (it runs after the
    form is parsed, before its fields are checked). A field the route does not take is 422 too (a
    misspelt one was left unread: ``tokns=5`` coded with the default), a form sent to a route that
    takes none included; a route without form fields and no form sent passes."""
    fields = _form_fields(request)
    names = [f.alias for f in fields]
    files = _file_fields(request)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    has_body = request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
    if not fields and not (kind in FORM_TYPES and has_body):
        return  # (a form sent to a route that takes none is read below: its fields are unknown to it)
    if kind not in FORM_TYPES and (kind or has_body):  # (no body and no type: its fields are missing, and told so)
        required = [f.alias for f in fields if f.field_info.is_required()]
        if any(f in files for f in required):
            how = "multipart/form-data"
        elif files:
            how = f"application/x-www-form-urlencoded, or multipart/form-data to send {' or '.join(sorted(files))}"
        else:
            how = "application/x-www-form-urlencoded or multipart/form-data"
        optional = [n for n in names if n not in required]
        raise WrongType(f"the body is {state.shown(kind) if kind else 'of no content type'}, not a form: send a "
                        f"form ({how})" + (f" with the field{'s' if len(required) > 1 else ''} "
                                           f"{_listed(required, files)}" if required else "")
                        + (f"; optional: {_listed(optional, files)}" if optional else ""))
    form = await request.form()  # (parsed already, and kept: this is the form the fields are read from)
    unknown = sorted(set(form.keys()) - set(names))
    if unknown:  # (a misspelt field was left unread without a word: tokns=5 coded with the default)
        raise BadField(f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(state.shown(u) for u in unknown)}: "
                       f"this request takes {_listed(names, files)}")
    for f in fields:
        values = form.getlist(f.alias)
        if len(values) > 1:
            raise BadField(f"{f.alias} was sent {len(values)} times: send it once")
        if values == [""]:
            raise BadField(f"{f.alias} is empty: give a value" +
                           ("" if f.field_info.is_required() else ", or leave the field out for its default"))


def _listed(names: Sequence[str], files: set[str] = frozenset()) -> str:
    """``names`` for a message: 'a, b (a file)'; 'no field' when there is none."""
    return ", ".join(f"{n} (a file)" if n in files else n for n in names) or "no field"


async def checked_query(request: Request) -> None:
    """Refuse a request to an ``/api/`` route whose query string has a parameter the route does not
    read, or one it reads given more than once (422, naming it): ``frame?token=5`` was the whole
    sequence, and of ``?tokens=1&tokens=9`` the last was taken, each without a word. A dependency of
    every route, beside :func:`checked_form`."""
    if not request.url.path.startswith("/api/"):
        return
    dependant = getattr(request.scope.get("route"), "dependant", None)  # (the routes' own: no dependency reads a query)
    names = [q.alias for q in getattr(dependant, "query_params", ())]
    unknown = sorted(set(request.query_params.keys()) - set(names))
    if unknown:
        raise BadField(f"unknown query parameter{'s' if len(unknown) > 1 else ''} "
                       f"{', '.join(state.shown(u) for u in unknown)}: this request takes "
                       + (", ".join(names) if names else "none"))
    for name in names:
        values = request.query_params.getlist(name)
        if len(values) > 1:
            raise BadField(f"{name} was given {len(values)} times in the query: give it once")


def _attachment(name: str) -> str:
    """A Content-Disposition for ``name``: headers are Latin-1, so an ASCII name for every client
    and the name itself in UTF-8 (RFC 6266's filename*) for those that read it (an upload named
    in another script made the download fail with 500)."""
    plain = name.encode("ascii", "replace").decode().replace("?", "_")
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


class _BodyTooLarge(StarletteHTTPException):
    """A body over the limit, found while it arrives. An HTTP exception so that a form parser that
    meets it passes it on (FastAPI turns any other exception there into 400 "There was an error
    parsing the body") and the app's handler answers 413."""

    def __init__(self, message: str) -> None:
        super().__init__(413, message)


class BodyLimit:
    """Refuse a request body larger than ``max_bytes`` plus ``framing`` (the multipart form around
    the file: its boundaries and small fields) with 413, from its Content-Length or while it
    arrives (a chunked upload), before the rest of it is read or parsed. The message names
    ``max_bytes``, the limit the server was given (``--max-upload``): it named the body's limit, 64
    KiB more, so a file over both was told one limit and a file between them the other."""

    def __init__(self, app, max_bytes: int, framing: int = 64 * 1024) -> None:
        self.app, self.max_bytes, self.max_body = app, int(max_bytes), int(max_bytes) + int(framing)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        message = (f"the upload is larger than this server's upload limit of {self.max_bytes:,} bytes: "
                   "choose a smaller file")
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            return await _error(413, message)(scope, receive, send)
        seen = 0
        started = False

        async def limited_receive():
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_body:
                    raise _BodyTooLarge(message)
            return msg

        async def tracking_send(msg):
            nonlocal started
            started = started or msg["type"] == "http.response.start"
            await send(msg)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _error(413, message)(scope, receive, send)


#: The names a browser on this machine reaches the server by (a Host header's name, the port aside).
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")
#: Methods that change nothing on the server; any other (POST ...) must come from the server's own page.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def url_host(host: str) -> str:
    """``host`` as it stands in a URL and a Host header: an IPv6 address in brackets."""
    host = host.strip()
    return f"[{host.strip('[]')}]" if ":" in host else host


def allowed_hosts(host: str | None = None) -> list[str]:
    """The Host names the app answers: this machine's (:data:`LOCAL_HOSTS`) and ``host``, the address
    it listens on (``--host``), each with any port (Starlette's TrustedHostMiddleware compares the
    name alone)."""
    hosts = list(LOCAL_HOSTS)
    if host and url_host(host).lower() not in hosts:
        hosts.append(url_host(host).lower())
    return hosts


class SameOrigin:
    """Refuse (403) a request that may change the server's state (any method but GET, HEAD and
    OPTIONS) whose ``Origin`` header names another site than the one it is sent to: a form or a
    ``fetch`` of any web page the person has open could otherwise upload, encode and start
    generations on their machine. A request without ``Origin`` (a script, ``curl``, the test
    client) passes: a browser sends it with every cross-site POST. (The Host check, DNS rebinding's
    defence, is Starlette's ``TrustedHostMiddleware``; starlette has no origin check of its own.)"""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            origin = Headers(scope=scope).get("origin")
            if origin is not None and not _same_origin(origin, URL(scope=scope)):
                here = f"{scope.get('scheme', 'http')}://{Headers(scope=scope).get('host', '')}"
                return await _error(403, f"refused: this {scope['method']} was sent by a page of another site "
                                         f"({state.shown(origin)}), not by this server's own page ({here}); "
                                         f"open {here}/ to use it")(scope, receive, send)
        await self.app(scope, receive, send)


def _same_origin(origin: str, url: URL) -> bool:
    """Whether the ``Origin`` header ``origin`` is the scheme, host and port of ``url`` (a default
    port written or not; ``null``, an opaque origin, is never the same)."""
    ports = {"http": 80, "https": 443}
    try:
        o = urlsplit(origin.strip())
        port = o.port
    except ValueError:
        return False
    if not o.scheme or not o.hostname:
        return False
    return (o.scheme.lower(), o.hostname.lower(), port or ports.get(o.scheme.lower())) == \
        (url.scheme.lower(), (url.hostname or "").lower(), url.port or ports.get(url.scheme.lower()))


# --------------------------------------------------------------------------------------------
# The app
# --------------------------------------------------------------------------------------------


def create_app(limits: Limits | None = None, generators: Sequence[str | Path] | None = None,
               host: str | None = None) -> FastAPI:
    """The page's app. ``generators``: the generator names or checkpoint folders the page offers
    (default: the shipped ones). ``host``: the address the server listens on (``--host``): with
    127.0.0.1, localhost and ::1 the only names a request's Host header may give (400 for any other:
    a DNS-rebinding page reaches the server under its own name); a POST a page of another site sent
    (its ``Origin`` header) is refused with 403 (:class:`SameOrigin`)."""
    limits = limits or Limits()
    server = Server(limits, generators)
    app = FastAPI(title="adatok", docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[Depends(checked_form), Depends(checked_query)])
    app.state.server = server
    app.add_middleware(BodyLimit, max_bytes=limits.max_upload_bytes)
    app.add_middleware(SameOrigin)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(host), www_redirect=False)  # (outermost)

    @app.exception_handler(AdatokError)
    async def adatok_error(request: Request, exc: AdatokError):
        return _error(getattr(exc, "status", 400), str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        return _error(422, _validation_message(exc, _file_fields(request)))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        # (its headers kept: a 405's Allow, RFC 9110, was dropped)
        detail = exc.detail if isinstance(exc.detail, str) else "the request failed"
        headers = dict(exc.headers or {})
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"nothing here: {request.url.path} (the page is at /)"
        if exc.status_code == 405 and "Allow" in headers:
            allow = ", ".join(sorted(m.strip() for m in headers["Allow"].split(",")))
            headers["Allow"] = allow
            detail = f"{request.method} is not answered at {request.url.path}: use {allow}"
        return _error(exc.status_code, detail, headers)

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception):
        log.exception("error in %s %s", request.method, request.url.path)
        return _error(500, f"internal error ({type(exc).__name__}); the server's log has the details")

    # --- the page --------------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/info")
    async def info(request: Request):
        from adatok.datasets import FASHION_MNIST_CLASSES, SAMPLE_IMAGES

        return {"version": adatok.__version__, "tokenizers": server.tokenizers(),
                "samples": [*SAMPLE_IMAGES, *state.fashion_samples()], "classes": list(FASHION_MNIST_CLASSES),
                "generators": await server.run_light(request, lambda stop: server.generator_list()),
                "limits": {"max_upload_bytes": limits.max_upload_bytes, "max_pixels": limits.max_pixels,
                           "seconds": limits.seconds, "encoders": limits.encoders}}

    # --- images ----------------------------------------------------------------------------------

    def _add_image(name: str, pixels: np.ndarray, flattened: bool = False) -> dict:
        img = Image(name, pixels, flattened)
        return img.describe(server.images.add(img))

    @app.post("/api/images")
    async def upload_image(request: Request, file: UploadFile = File(...)):
        from adatok.core.imageio import read_image_and_alpha

        data = await _read_upload(file, limits, image=True)
        # (whether transparency was flattened onto white: in the answer, as adatok encode warns of it)
        pixels, flattened = await server.run_light(
            request, lambda stop: state.read_upload(data, file.filename, limits, read_image_and_alpha))
        return _add_image(state.display_name(file.filename), pixels, flattened)

    @app.post("/api/samples/{name}")
    async def sample(request: Request, name: str):
        pixels = await server.run_light(request, lambda stop: state.sample_image(name))
        h, w = pixels.shape[:2]
        if h * w > limits.max_pixels:  # (as an upload of the same photo is: the samples skipped the limit)
            raise TooLarge(f"{name} is {state.size_text(pixels.shape)} = {w * h:,} pixels, over this server's limit "
                           f"of {limits.max_pixels:,} pixels (start the server with a larger --max-pixels)")
        return _add_image(name, pixels)

    @app.get("/api/images/{iid}.png")
    async def image_png(request: Request, iid: str):
        img = server.images.get(iid)
        return Response(await server.run_light(request, lambda stop: state.png(img.pixels)), media_type="image/png")

    # --- codings ---------------------------------------------------------------------------------

    @app.post("/api/codings")
    async def new_coding(request: Request, image: str = Form(...), tokenizer: str = Form("wavelet"), roi: str = Form("none"),
                         mask: UploadFile | None = File(None)):
        img = server.images.get(image)
        server.check_tokenizer(tokenizer)
        if mask is not None and roi != "paint":  # (it was left unread: the coding had another region, or none)
            raise ServeError(f"a mask goes with roi=paint only, and this request has roi={state.shown(roi)}: send "
                             "roi=paint with the mask, or leave the mask out")
        region, roi_name = None, None
        if roi == "paint":
            if mask is None:
                raise ServeError("roi=paint needs the painted region as a PNG mask (the form field 'mask')")
            from adatok.core.saliency import read_mask

            data = await _read_upload(mask, limits, image=True)
            # read as the library reads a mask file (gray levels graded, transparency refused), so the
            # coding is the library's encode(img, roi=[that file])
            region = await server.run_light(request, lambda stop: state.read_upload(data, "the painted region", limits,
                                                                                    read_mask))
            if region.shape[:2] != img.shape[:2]:
                raise ServeError(f"the painted region is {state.size_text(region.shape)} but the image is "
                                 f"{state.size_text(img.shape)}: paint on the image as shown")
            # refused only with nothing painted: a gray mask (no pixel >= 0.5, so no pixel "inside" as
            # region_mask counts) still steers the library's encode, and was refused as empty
            if not np.any(region > 0):
                raise ServeError("the painted region is empty (every pixel of the mask is black): paint over the "
                                 "part of the image that matters")
            roi_name = "painted"
        elif roi != "none":
            from adatok.core.saliency import METHODS, check_method, is_method

            if not is_method(roi):
                raise ServeError(f"roi must be none, paint or a saliency method ({', '.join(METHODS)}), "
                                 f"got {state.shown(roi)}")
            roi_name = check_method(roi)
            region = await server.run_light(request, lambda stop: _saliency(img.pixels, roi_name))
        if region is None:
            found = server.codings.find(lambda c: c.iid == image and c.tokenizer == tokenizer and c.roi is None)
            if found is not None:
                return found[1].describe(found[0])
        coding = await server.run_heavy(request, lambda stop: Coding(image, img, tokenizer, region, roi_name, stop=stop))
        return coding.describe(server.codings.add(coding))

    @app.get("/api/codings/{cid}/frame")
    async def frame(request: Request, cid: str, tokens: int | None = None,
                    nbytes: int | None = Query(None, alias="bytes"), psnr: float | None = None):
        coding: Coding = server.codings.get(cid)
        t0 = time.perf_counter()
        pixels, numbers = await server.run_light(
            request, lambda stop: coding.frame(coding.resolve(tokens, nbytes, psnr, stop=stop)))
        ms = (time.perf_counter() - t0) * 1e3
        h, w, c = pixels.shape
        numbers.update(width=w, height=h, channels=c, server_ms=round(ms, 2))
        return Response(np.ascontiguousarray(pixels).tobytes(), media_type="application/octet-stream",
                        headers={"X-Adatok-Frame": json.dumps(numbers), "Server-Timing": f"frame;dur={ms:.2f}",
                                 "Cache-Control": "no-store"})

    @app.get("/api/codings/{cid}/details")
    async def details(request: Request, cid: str, tokens: int = Query(...)):
        coding: Coding = server.codings.get(cid)
        k = await server.run_light(request, lambda stop: coding.resolve(tokens, stop=stop))
        # an encoder's slot (SSIM and the maps of a 1024x1024 image take seconds), stopped between its steps
        return await server.run_heavy(request, lambda stop: coding.details(k, stop=stop))

    @app.get("/api/codings/{cid}/curve")
    async def rd_curve(request: Request, cid: str):
        coding: Coding = server.codings.get(cid)
        if coding.curve is None:
            coding.curve = await server.run_heavy(request, lambda stop: state.curve(coding, stop=stop))
        return coding.curve

    @app.get("/api/codings/{cid}/compare")
    async def compare(request: Request, cid: str, nbytes: int = Query(..., alias="bytes")):
        steered: Coding = server.codings.get(cid)
        if steered.roi is None:
            raise ServeError("this coding has no region of interest: encode with a painted or automatic region first")
        if not 0 <= nbytes <= 2**40:
            raise OutOfRange(f"bytes={state.shown(nbytes)} is out of range: give 0 to 2**40")
        found = server.codings.find(lambda c: c.iid == steered.iid and c.tokenizer == steered.tokenizer and c.roi is None)
        if found is None:
            plain = await server.run_heavy(request, lambda stop: Coding(steered.iid, steered.image, steered.tokenizer,
                                                                        stop=stop))
            server.codings.add(plain)
        else:
            plain = found[1]
        return await server.run_heavy(request, lambda stop: state.compare(plain, steered, nbytes, stop=stop))

    def _download_name(coding: Coding, k: int, suffix: str) -> str:
        stem = coding.image.name.rsplit(".", 1)[0] or "image"
        return f"{stem}-{coding.tokenizer}-{k}{suffix}"

    @app.get("/api/codings/{cid}/prefix.atk")
    async def prefix_atk(request: Request, cid: str, tokens: int | None = None,
                         nbytes: int | None = Query(None, alias="bytes"), psnr: float | None = None):
        coding: Coding = server.codings.get(cid)
        k = await server.run_light(request, lambda stop: coding.resolve(tokens, nbytes, psnr, stop=stop))
        data = await server.run_heavy(request, lambda stop: coding.prefixes.sequence(k).to_bytes())
        return Response(data, media_type="application/octet-stream", headers={
            "Content-Disposition": _attachment(_download_name(coding, k, ".atk")), "X-Adatok-Tokens": str(k)})

    @app.get("/api/codings/{cid}/prefix.png")
    async def prefix_png(request: Request, cid: str, tokens: int | None = None,
                         nbytes: int | None = Query(None, alias="bytes"), psnr: float | None = None):
        coding: Coding = server.codings.get(cid)
        k = await server.run_light(request, lambda stop: coding.resolve(tokens, nbytes, psnr, stop=stop))
        data = await server.run_light(request, lambda stop: state.png(coding.picture(k)))
        return Response(data, media_type="image/png", headers={
            "Content-Disposition": _attachment(_download_name(coding, k, ".png"))})

    # --- generation ------------------------------------------------------------------------------

    def _job_options(label: int, n: int, cfg: float, max_tokens: int | None, seed: int) -> None:
        if not 0 <= seed < 2**63:  # (torch's generator takes no more; past it the job failed as a bug)
            raise OutOfRange(f"seed={state.shown(seed)} is out of range: 0 to 2**63 - 1")
        if label < -1:
            raise OutOfRange(f"label={state.shown(label)} is out of range: a class 0 or more, or -1 for any")
        if not 1 <= n <= 16:
            raise OutOfRange(f"n={state.shown(n)} is out of range: 1 to 16 samples")
        if not 0 <= cfg <= 10:
            raise OutOfRange(f"cfg={state.shown(cfg)} is out of range: a guidance weight from 0 to 10 (1: none)")
        if max_tokens is not None and max_tokens < 1:
            raise OutOfRange(f"max_tokens={state.shown(max_tokens)} is out of range: 1 or more (or leave it out: up "
                             "to the model's longest training sequence, a completion's prefix counted)")

    def _class_of(gen, label: int) -> int | None:
        """The job's class, checked against the generator's own (they were 0..9 whatever the model:
        a generator of 12 classes could not be asked for class 11, one of 3 failed in its job)."""
        classes = gen.model.cfg.classes
        if label >= classes:
            raise OutOfRange(f"label={state.shown(label)} is out of range: {gen.name} has the classes 0..{classes - 1} "
                             "(-1: any)")
        return None if label < 0 else label

    @app.post("/api/jobs/generate")
    async def generate(request: Request, model: str = Form(...), label: int = Form(-1), n: int = Form(4), seed: int = Form(0),
                       cfg: float = Form(2.0), max_tokens: int | None = Form(None)):
        _job_options(label, n, cfg, max_tokens, seed)
        gen = await server.run_heavy(request, lambda stop: server.generator(model))
        work = state.generate_job(gen, _class_of(gen, label), n, seed, cfg, limits.updates, limits.seconds,
                                  max_tokens)
        return {"job": server.jobs.add(Job(work)), "model": model, "n": n}

    @app.post("/api/jobs/complete")
    async def complete(request: Request, file: UploadFile = File(...), model: str = Form(...), label: int = Form(-1),
                       n: int = Form(4), seed: int = Form(0), cfg: float = Form(2.0), max_tokens: int | None = Form(None)):
        _job_options(label, n, cfg, max_tokens, seed)
        data = await _read_upload(file, limits, image=False)
        if not data:
            raise ServeError(f"{state.display_name(file.filename)} is empty (0 bytes): choose a cut .atk file")
        gen = await server.run_heavy(request, lambda stop: server.generator(model))
        prefix = await server.run_light(request, lambda stop: _prefix_for(gen, data, state.display_name(file.filename),
                                                                          max_tokens is None, True))
        picture = await server.run_light(request, lambda stop: gen.lang.decode([prefix])[0])
        work = state.complete_job(gen, prefix, _class_of(gen, label), n, seed, cfg, limits.updates,
                                  limits.seconds, max_tokens)
        return {"job": server.jobs.add(Job(work)), "model": model, "n": n, "prefix": len(prefix),
                "prefix_image": state.png_uri(np.asarray(picture).reshape(prefix.shape[0], prefix.shape[1], -1))}

    @app.get("/api/jobs/{jid}/events")
    async def events(request: Request, jid: str):
        job: Job = server.jobs.get(jid)
        if job.started:  # (one stream per job: its pictures go to the page that asked first)
            raise ServeError("this job's events were asked for already: a job runs once, for the first request of "
                             "its events (it is running, or has ended, there); start a new job to watch it here")
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        if request.method == "HEAD":  # (a GET's headers; the job is left to the first GET, which watches it)
            return StreamingResponse(iter(()), media_type="text/event-stream", headers=headers)
        job.started = True
        loop = asyncio.get_running_loop()
        out: asyncio.Queue = asyncio.Queue()
        emit = lambda ev: loop.call_soon_threadsafe(out.put_nowait, ev)  # noqa: E731
        threading.Thread(target=_run_job, args=(server, job, emit), daemon=True, name="adatok-generate").start()

        async def stream():
            try:
                while True:
                    ev = await out.get()
                    if ev is None:
                        break
                    yield f"data: {json.dumps(ev)}\n\n"
            finally:
                job.cancel.set()  # the page went away (or the job ended): stop the work

        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    # every GET route answers HEAD too (FastAPI's routes do not, Starlette's do): a GET's headers, its
    # body dropped by the server (uvicorn, the test client), its work done (a job's events: not started)
    for route in app.routes:
        if isinstance(route, APIRoute) and "GET" in route.methods:
            route.methods.add("HEAD")
    return app


async def _read_upload(file: UploadFile, limits: Limits, image: bool) -> bytes:
    """The bytes of an uploaded file (held in memory or in the server's temporary folder by the
    form parser, and closed here); a declared type that is plainly not the expected kind is 415."""
    kind = (file.content_type or "").split(";")[0].strip().lower()
    expected = "an image file (PNG, JPEG, WebP, TIFF ...)" if image else "an .atk file"
    plainly_other = kind.startswith(("text/", "audio/", "video/")) or kind in (
        "application/json", "application/pdf", "application/zip", "application/xml", "application/javascript")
    if plainly_other or (not image and kind.startswith("image/")):
        raise WrongType(f"{state.display_name(file.filename)} is {kind}, not {expected}")
    try:
        data = await file.read(limits.max_upload_bytes + 1)
    finally:
        await file.close()
    if len(data) > limits.max_upload_bytes:
        raise TooLarge(f"{state.display_name(file.filename)} is larger than this server's upload limit of "
                       f"{limits.max_upload_bytes:,} bytes")
    return data


def _config(folder: Path) -> dict:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, *JSON_ERRORS):
        return {}
    return config if isinstance(config, dict) else {}


def _has_torch() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def _saliency(pixels: np.ndarray, method: str) -> np.ndarray:
    from adatok.core.saliency import saliency

    return saliency(pixels, method)


def _prefix_for(gen, data: bytes, name: str, need_room: bool = False, need_more: bool = False) -> TokenSequence:
    """The prefix a cut ``.atk`` file holds, checked against what ``gen`` writes: from its header
    first (a file of a hundred bytes may ask for an image of 50 million pixels, which decoding
    would build before the shape were checked), then decoded. ``need_more`` (a completion): a
    whole sequence, after which no token may stand, is refused."""
    from adatok.generate.sample import prefix_from_bytes

    seq = prefix_from_bytes(gen, data, name)
    try:  # a prefix the model cannot go on from (a region's, pixel replication's tree): refused here, not in the job
        st = gen.lang.stepper(prefixes=[seq])
        held = int(st.lengths[0])
    except AdatokError as exc:
        raise ServeError(f"{name}: {exc}") from None
    # a whole file (not cut): its stream has ended and no token may follow; its "completions" were n copies
    # of it, given as done without a word
    if need_more and not np.asarray(st.legal(), bool)[0].any():
        raise ServeError(f"{name} is a whole sequence ({held:,} tokens: its stream has ended), not a cut one: nothing "
                         "is left to write; upload its first bytes (a prefix)")
    # ``need_room`` (a completion without max_tokens): a prefix as long as the longest sequence the model
    # learned is refused: the sampler stops there, the prefix counted, and such a job wrote nothing
    longest = gen.config.get("longest")
    if need_room and longest is not None and held >= longest:
        raise ServeError(f"the cut file holds {held:,} of {gen.name}'s tokens, as many as the longest sequence it "
                         f"learned ({longest:,}): it would write nothing more; give max_tokens, or cut the file "
                         "shorter")
    return seq


def _run_job(server: Server, job: Job, emit) -> None:
    """A job in its thread: waits for a generation slot, runs, sends its events, then None. A job
    whose page went away while it waited ends at once (its thread waited out the time limit for a
    slot: a client asking for jobs and hanging up piled up threads as fast as it asked)."""
    try:
        deadline = time.monotonic() + server.limits.seconds
        while not server.gen_slots.acquire(timeout=min(0.1, max(deadline - time.monotonic(), 0))):
            if job.cancel.is_set():
                return
            if time.monotonic() >= deadline:
                emit({"error": "the server is busy with other generations: try again in a moment"})
                return
        try:
            if job.cancel.is_set():
                return
            job.work(emit, job.cancel.is_set)
        finally:
            server.gen_slots.release()
    except state.Cancelled:
        if not job.cancel.is_set():
            emit({"error": f"stopped: the generation took longer than the server's time limit of "
                           f"{server.limits.seconds:g} s"})
    except AdatokError as exc:
        emit({"error": " ".join(str(exc).split())})
    except Exception:  # noqa: BLE001 - shown in words, traced in the log
        log.exception("error in a generation job")
        emit({"error": "internal error while generating; the server's log has the details"})
    finally:
        emit(None)
