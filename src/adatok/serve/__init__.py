"""``adatok serve``: a web page where people watch tokens arrive, steer them, and generate.

One static page (``static/``: plain HTML, CSS and JavaScript, nothing loaded from elsewhere) and a
small JSON / binary API (:mod:`.app`) over the library (:mod:`.state`). Start it with
``adatok serve`` (``--host``, ``--port``); in Python, ``create_app()`` is the FastAPI app to give
uvicorn. Needs the ``serve`` extra (FastAPI, uvicorn, python-multipart); generation needs torch.
"""

from .app import create_app
from .state import Limits

__all__ = ["Limits", "create_app"]
