"""The ``adatok`` command line: a thin shell over the library.

    adatok encode photo.png photo.atk --psnr 38       # image -> token file
    adatok decode photo.atk preview.png --tokens 5000  # any prefix -> image
    adatok info photo.atk                              # what is in a token file
    adatok eval --data samples --out out/eval          # rate-distortion against codecs, HTML report
    adatok eval --data samples --roi masks/ --out out/roi   # ... with PSNR inside and outside a region
    adatok demo --out out/demo                         # eval of both wavelet tokenizers on the sample photos
    adatok serve                                       # the web page: http://127.0.0.1:8000/
    adatok tokenize-dataset photos/ out/tokens --psnr 35   # a corpus into Parquet shards, with Ray Data

Every failure a user can cause (:class:`adatok.AdatokError`) is printed as one line
``error: <message>`` on stderr and exits with code 2, without a traceback; files are written
atomically, so a failed command leaves no partial output and never clobbers an existing file.

One module per command group registers its commands on :data:`app` (:mod:`.app`):
:mod:`.tokenize` (encode, decode, info), :mod:`.evaluate` (eval, demo, saliency),
:mod:`.train`, :mod:`.generate` (train-generator, generate), :mod:`.scale` (tokenize-dataset) and
:mod:`.serve` (the web page).
Options that several commands take are in :mod:`.options`, the helpers they share
(error reporting, reading files, budgets) in :mod:`.common`, the tables they print in
:mod:`.tables`. A new command group is one new module, imported below; the import order is the
order of ``adatok --help``.
"""

from __future__ import annotations

from . import tokenize, evaluate, train, generate, scale, serve  # noqa: F401  (register the commands, in this order)
from .app import app
from .tables import token_table

__all__ = ["app", "token_table"]
