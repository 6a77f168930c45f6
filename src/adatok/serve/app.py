"""The FastAPI application of ``adatok serve``: one static page and a small JSON / binary API over
the library (:mod:`adatok.serve.state` holds what the requests work on).

Every refused request gets a 4xx (503 when the server is busy or the work ran past the time limit)
with a JSON body ``{"error": "<what was wrong and what to do>"}`` the page shows as it is; a bug
gets a 500 with a one-line message, never a stack trace (the trace goes to the server's log).

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
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import numpy as np
from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

import adatok
from adatok import AdatokError, TokenSequence
from adatok.core.checks import JSON_ERRORS

from . import state
from .state import Busy, Coding, Image, Job, Limits, NotFound, OutOfRange, ServeError, TooLarge, WrongType

STATIC = Path(__file__).resolve().parent / "static"
CHECKPOINTS = Path(adatok.__file__).resolve().parent / "checkpoints"
log = logging.getLogger("adatok.serve")


class Server:
    """What one app works with: its limits, stores, executors and generator list."""

    def __init__(self, limits: Limits, generators: Sequence[str | Path] | None) -> None:
        self.limits = limits
        self.images = state.Store(limits.images, "image")
        self.codings = state.Store(limits.codings, "coding")
        self.jobs = state.Store(32, "job")
        self.slots = threading.BoundedSemaphore(limits.encoders)
        self.gen_slots = threading.BoundedSemaphore(limits.generations)
        self.heavy = ThreadPoolExecutor(max_workers=limits.encoders + 8, thread_name_prefix="adatok-encode")
        self.light = ThreadPoolExecutor(max_workers=4, thread_name_prefix="adatok-frame")
        self._generator_specs = None if generators is None else [str(g) for g in generators]
        self._generators: dict[str, object] = {}
        self._gen_lock = threading.Lock()

    # --- work in threads, bounded ----------------------------------------------------------------

    async def run_heavy(self, fn, *args):
        """Run ``fn`` in a thread once one of the ``encoders`` slots is free; 503 when none frees up or
        the work runs past the time limit (it then finishes in the background, its slot held). Work
        whose request has ended (answered 503, or the client gone) before it got a slot is not
        started: a thread that began waiting late (queued behind others) waited a whole time limit
        of its own and then encoded for nobody, the slot held from the requests still waiting."""
        limits = self.limits
        deadline = time.monotonic() + limits.seconds
        abandoned = threading.Event()

        def task():
            if abandoned.is_set() or not self.slots.acquire(timeout=max(deadline - time.monotonic(), 0)):
                raise Busy(f"the server is busy ({limits.encoders} encodes running for {limits.seconds:g} s): try "
                           "again in a moment")
            try:
                if abandoned.is_set():
                    raise Busy("the request ended before its work started")
                return fn(*args)
            finally:
                self.slots.release()

        try:
            return await self._bounded(self.heavy, task)
        finally:
            abandoned.set()  # (answered, timed out or cancelled: a task not yet started has no one to answer)

    async def run_light(self, fn, *args):
        return await self._bounded(self.light, lambda: fn(*args))

    async def _bounded(self, executor, task):
        future = asyncio.get_running_loop().run_in_executor(executor, task)
        try:
            return await asyncio.wait_for(future, self.limits.seconds)
        except TimeoutError:
            raise Busy(f"this took longer than the server's time limit of {self.limits.seconds:g} s: try a "
                       "smaller image, or again when the server is less busy") from None

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


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": " ".join(str(message).split())}, status_code=status,
                        headers={"Cache-Control": "no-store"})


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "body", "path", "form"))
        value = err.get("input")
        msg = err.get("msg", "is invalid")
        parts.append(f"{where or 'the request'}: {msg}" + (f" (got {state.shown(value)})" if value is not None and
                                                           not isinstance(value, dict | bytes) else ""))
    return "; ".join(parts) or "the request is invalid"


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


# --------------------------------------------------------------------------------------------
# The app
# --------------------------------------------------------------------------------------------


def create_app(limits: Limits | None = None, generators: Sequence[str | Path] | None = None) -> FastAPI:
    """The page's app. ``generators``: the generator names or checkpoint folders the page offers
    (default: the shipped ones)."""
    limits = limits or Limits()
    server = Server(limits, generators)
    app = FastAPI(title="adatok", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.server = server
    app.add_middleware(BodyLimit, max_bytes=limits.max_upload_bytes)

    @app.exception_handler(AdatokError)
    async def adatok_error(request: Request, exc: AdatokError):
        return _error(getattr(exc, "status", 400), str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        return _error(422, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else "the request failed"
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"nothing here: {request.url.path} (the page is at /)"
        return _error(exc.status_code, detail)

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
    async def info():
        from adatok.datasets import FASHION_MNIST_CLASSES, SAMPLE_IMAGES

        return {"version": adatok.__version__, "tokenizers": server.tokenizers(),
                "samples": [*SAMPLE_IMAGES, *state.fashion_samples()], "classes": list(FASHION_MNIST_CLASSES),
                "generators": await server.run_light(server.generator_list),
                "limits": {"max_upload_bytes": limits.max_upload_bytes, "max_pixels": limits.max_pixels,
                           "seconds": limits.seconds, "encoders": limits.encoders}}

    # --- images ----------------------------------------------------------------------------------

    def _add_image(name: str, pixels: np.ndarray) -> dict:
        img = Image(name, pixels)
        return img.describe(server.images.add(img))

    @app.post("/api/images")
    async def upload_image(file: UploadFile = File(...)):
        data = await _read_upload(file, limits, image=True)
        pixels = await server.run_light(state.read_upload, data, file.filename, limits)
        return _add_image(state.display_name(file.filename), pixels)

    @app.post("/api/samples/{name}")
    async def sample(name: str):
        pixels = await server.run_light(state.sample_image, name)
        h, w = pixels.shape[:2]
        if h * w > limits.max_pixels:  # (as an upload of the same photo is: the samples skipped the limit)
            raise TooLarge(f"{name} is {w}x{h} = {w * h:,} pixels, over this server's limit of {limits.max_pixels:,} "
                           "pixels (start the server with a larger --max-pixels)")
        return _add_image(name, pixels)

    @app.get("/api/images/{iid}.png")
    async def image_png(iid: str):
        img = server.images.get(iid)
        return Response(await server.run_light(state.png, img.pixels), media_type="image/png")

    # --- codings ---------------------------------------------------------------------------------

    @app.post("/api/codings")
    async def new_coding(image: str = Form(...), tokenizer: str = Form("wavelet"), roi: str = Form("none"),
                         mask: UploadFile | None = File(None)):
        img = server.images.get(image)
        server.check_tokenizer(tokenizer)
        region, roi_name = None, None
        if roi == "paint":
            if mask is None:
                raise ServeError("roi=paint needs the painted region as a PNG mask (the form field 'mask')")
            from adatok.core.saliency import read_mask

            data = await _read_upload(mask, limits, image=True)
            # read as the library reads a mask file (gray levels graded, transparency refused), so the
            # coding is the library's encode(img, roi=[that file])
            region = await server.run_light(state.read_upload, data, "the painted region", limits, read_mask)
            if region.shape[:2] != img.shape[:2]:
                raise ServeError(f"the painted region is {region.shape[0]}x{region.shape[1]} but the image is "
                                 f"{img.shape[0]}x{img.shape[1]}: paint on the image as shown")
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
            region = await server.run_light(_saliency, img.pixels, roi_name)
        if region is None:
            found = server.codings.find(lambda c: c.iid == image and c.tokenizer == tokenizer and c.roi is None)
            if found is not None:
                return found[1].describe(found[0])
        coding = await server.run_heavy(Coding, image, img, tokenizer, region, roi_name)
        return coding.describe(server.codings.add(coding))

    @app.get("/api/codings/{cid}/frame")
    async def frame(cid: str, tokens: int | None = None, nbytes: int | None = Query(None, alias="bytes"),
                    psnr: float | None = None):
        coding: Coding = server.codings.get(cid)
        t0 = time.perf_counter()
        pixels, numbers = await server.run_light(lambda: coding.frame(coding.resolve(tokens, nbytes, psnr)))
        ms = (time.perf_counter() - t0) * 1e3
        h, w, c = pixels.shape
        numbers.update(width=w, height=h, channels=c, server_ms=round(ms, 2))
        return Response(np.ascontiguousarray(pixels).tobytes(), media_type="application/octet-stream",
                        headers={"X-Adatok-Frame": json.dumps(numbers), "Server-Timing": f"frame;dur={ms:.2f}",
                                 "Cache-Control": "no-store"})

    @app.get("/api/codings/{cid}/details")
    async def details(cid: str, tokens: int = Query(...)):
        coding: Coding = server.codings.get(cid)
        k = await server.run_light(coding.resolve, tokens)
        # an encoder's slot: the heat map of a long prefix builds every token's place (half a GB for the
        # 4.8 million tokens of a 1024x512 photo); four at once on the frame threads took 1.9 GB
        return await server.run_heavy(coding.details, k)

    @app.get("/api/codings/{cid}/curve")
    async def rd_curve(cid: str):
        coding: Coding = server.codings.get(cid)
        if coding.curve is None:
            coding.curve = await server.run_heavy(state.curve, coding)
        return coding.curve

    @app.get("/api/codings/{cid}/compare")
    async def compare(cid: str, nbytes: int = Query(..., alias="bytes")):
        steered: Coding = server.codings.get(cid)
        if steered.roi is None:
            raise ServeError("this coding has no region of interest: encode with a painted or automatic region first")
        if not 0 <= nbytes <= 2**40:
            raise OutOfRange(f"bytes={state.shown(nbytes)} is out of range: give 0 to 2**40")
        found = server.codings.find(lambda c: c.iid == steered.iid and c.tokenizer == steered.tokenizer and c.roi is None)
        if found is None:
            plain = await server.run_heavy(Coding, steered.iid, steered.image, steered.tokenizer)
            server.codings.add(plain)
        else:
            plain = found[1]
        return await server.run_heavy(state.compare, plain, steered, nbytes)

    def _download_name(coding: Coding, k: int, suffix: str) -> str:
        stem = coding.image.name.rsplit(".", 1)[0] or "image"
        return f"{stem}-{coding.tokenizer}-{k}{suffix}"

    @app.get("/api/codings/{cid}/prefix.atk")
    async def prefix_atk(cid: str, tokens: int | None = None, nbytes: int | None = Query(None, alias="bytes"),
                         psnr: float | None = None):
        coding: Coding = server.codings.get(cid)
        k = await server.run_light(coding.resolve, tokens, nbytes, psnr)
        data = await server.run_heavy(lambda: coding.prefixes.sequence(k).to_bytes())
        return Response(data, media_type="application/octet-stream", headers={
            "Content-Disposition": _attachment(_download_name(coding, k, ".atk")), "X-Adatok-Tokens": str(k)})

    @app.get("/api/codings/{cid}/prefix.png")
    async def prefix_png(cid: str, tokens: int | None = None, nbytes: int | None = Query(None, alias="bytes"),
                         psnr: float | None = None):
        coding: Coding = server.codings.get(cid)
        k = await server.run_light(coding.resolve, tokens, nbytes, psnr)
        data = await server.run_light(lambda: state.png(coding.picture(k)))
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
    async def generate(model: str = Form(...), label: int = Form(-1), n: int = Form(4), seed: int = Form(0),
                       cfg: float = Form(2.0), max_tokens: int | None = Form(None)):
        _job_options(label, n, cfg, max_tokens, seed)
        gen = await server.run_heavy(server.generator, model)
        work = state.generate_job(gen, _class_of(gen, label), n, seed, cfg, limits.updates, limits.seconds,
                                  max_tokens)
        return {"job": server.jobs.add(Job(work)), "model": model, "n": n}

    @app.post("/api/jobs/complete")
    async def complete(file: UploadFile = File(...), model: str = Form(...), label: int = Form(-1),
                       n: int = Form(4), seed: int = Form(0), cfg: float = Form(2.0), max_tokens: int | None = Form(None)):
        _job_options(label, n, cfg, max_tokens, seed)
        data = await _read_upload(file, limits, image=False)
        if not data:
            raise ServeError(f"{state.display_name(file.filename)} is empty (0 bytes): choose a cut .atk file")
        gen = await server.run_heavy(server.generator, model)
        prefix = await server.run_light(_prefix_for, gen, data, state.display_name(file.filename), max_tokens is None,
                                        True)
        picture = await server.run_light(lambda: gen.lang.decode([prefix])[0])
        work = state.complete_job(gen, prefix, _class_of(gen, label), n, seed, cfg, limits.updates,
                                  limits.seconds, max_tokens)
        return {"job": server.jobs.add(Job(work)), "model": model, "n": n, "prefix": len(prefix),
                "prefix_image": state.png_uri(np.asarray(picture).reshape(prefix.shape[0], prefix.shape[1], -1))}

    @app.get("/api/jobs/{jid}/events")
    async def events(jid: str):
        job: Job = server.jobs.get(jid)
        if job.started:
            raise ServeError("this job has run already: start a new one")
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

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

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
