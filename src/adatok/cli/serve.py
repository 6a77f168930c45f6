"""``adatok serve``: the web page where tokens arrive, are steered, and are generated."""

from __future__ import annotations

import contextlib
import math
import socket
from pathlib import Path
from typing import Annotated

import typer

from adatok import AdatokError
from adatok.core.imageio import MAX_PIXELS

from .app import app
from .common import check_at_least, reporting_errors


@app.command("serve")
@reporting_errors
def serve_cmd(
    host: Annotated[str, typer.Option("--host", help="Address to listen on (the default: this machine only); "
                                      "a request whose Host names neither it nor 127.0.0.1, localhost or ::1 is "
                                      "refused.")]
        = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="Port to listen on.")] = 8000,
    generator: Annotated[list[str] | None, typer.Option(
        "--generator", "-g", metavar="NAME|FOLDER", show_default=False,
        help="A generator the page offers (repeatable; default: the shipped ones).")] = None,
    max_pixels: Annotated[int, typer.Option("--max-pixels", metavar="N",
                                            help=f"Largest image accepted, H x W (at most {MAX_PIXELS:,}).")] = 2**20,
    max_upload: Annotated[int, typer.Option("--max-upload", metavar="BYTES", help="Largest upload.")] = 16 * 2**20,
    seconds: Annotated[float, typer.Option("--seconds", metavar="S", help="Time limit of one request's work.")] = 60.0,
    encoders: Annotated[int, typer.Option("--encoders", metavar="N", help="Encodes running at once.")] = 2,
) -> None:
    """Serve the page: pick or drop an image, drag a slider over its tokens, paint a region of
    interest, compare with JPEG, WebP and JPEG 2000, and watch a generator write samples.
    Open the address it prints in a browser; Ctrl-C stops it."""
    for value, name in ((max_pixels, "--max-pixels"), (max_upload, "--max-upload"), (encoders, "--encoders")):
        check_at_least(value, name, 1)
    if not 0 < port < 65536:
        raise AdatokError(f"--port is 1..65535, got {port}")
    if not (math.isfinite(seconds) and seconds > 0):  # (NaN passed, then every upload got 503)
        raise AdatokError(f"--seconds must be a finite number > 0, got {seconds}")
    for g in generator or []:
        if ("/" in g or g.startswith(".")) and not Path(g).is_dir():
            raise AdatokError(f"--generator {g}: no such checkpoint folder")
    if generator:  # each one known before the page offers it (a misspelt name failed only when used)
        try:
            from adatok.generate.folders import generator_folder
            from adatok.neural.folder import read_json
        except ImportError as exc:
            raise AdatokError(f"--generator needs the neural extra ({exc.name} is missing): "
                              "pip install 'adatok[neural]'") from None
        for g in generator:
            family = read_json(generator_folder(g)).get("family")
            if family != "generator":
                raise AdatokError(f"--generator {g}: a {family} checkpoint, not a generator")
    try:
        import uvicorn

        from adatok.serve import Limits, create_app
        from adatok.serve.app import url_host
    except ImportError as exc:
        raise AdatokError(f"adatok serve needs the serve extra ({exc.name} is missing): "
                          "pip install 'adatok[serve]'") from None
    limits = Limits(max_upload_bytes=max_upload, max_pixels=max_pixels, seconds=seconds, encoders=encoders)
    web = create_app(limits, generator or None, host=host)
    try:  # bound before the address is printed: a busy port is one error line, not uvicorn's log
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.create_server((host, port), family=family)
    except OSError as exc:
        raise AdatokError(f"cannot listen on {host} port {port}: {exc.strerror or exc}") from None
    typer.echo(f"adatok serve: open http://{url_host(host)}:{port}/ in a browser (Ctrl-C stops it)", err=True)
    server = uvicorn.Server(uvicorn.Config(web, log_level="warning"))
    try:
        with _hangup_stops(server):
            server.run(sockets=[sock])
    except KeyboardInterrupt:  # Ctrl-C, after uvicorn's clean shutdown: a normal stop (exit 0)
        pass
    finally:
        sock.close()


@contextlib.contextmanager
def _hangup_stops(server):
    """SIGHUP (a closed terminal) shuts ``server`` down as uvicorn does for SIGTERM. The command line's
    handler raised it inside whatever request was running: uvicorn logged it as that request's error
    and went on serving, and a second SIGHUP did nothing. An ignored SIGHUP (``nohup``) stays ignored."""
    import signal
    import threading

    hup = getattr(signal, "SIGHUP", None)
    if hup is None or threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(hup) is signal.SIG_IGN:
        yield
        return
    before = signal.signal(hup, server.handle_exit)
    try:
        yield
    finally:
        signal.signal(hup, before)
