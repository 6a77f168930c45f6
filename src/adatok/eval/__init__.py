"""Evaluation: rate-distortion runs of tokenizers beside codecs and a uniform-grid tokenizer, and the report.

>>> from adatok.eval import run
>>> ev, report = run("samples", "out/eval", ["wavelet"], limit=2, max_side=64)   # doctest: +SKIP

* :func:`evaluate` -- every method x image x budget, measured (:mod:`adatok.eval.runner`);
* :func:`write_report` -- ``results.csv``, plots, ``bd_rate.csv`` and ``report.html``
  (:mod:`adatok.eval.report`);
* :func:`run` -- both, from a dataset name or folder (what ``adatok eval`` runs);
* baselines: :data:`CODECS` (JPEG, WebP, AVIF, JPEG 2000) and :class:`GridTokenizer`;
* regions of interest (``run(..., roi="auto" | mask file | mask folder)``, ``evaluate(..., roi=...)``):
  :func:`region_maps`, :func:`mask_regions` (:mod:`adatok.eval.regions`); rows get ``psnr_roi``
  and ``psnr_out``, and wavelet tokenizers also run steered by the region (``wavelet+roi``);
* :func:`bd_rate`, :func:`ms_ssim`, :func:`quality`, :func:`token_heatmap`.

This layer imports numpy, Pillow, scikit-image, scikit-learn, sewar and matplotlib; never torch.
"""

from .baselines import CODECS, Codec, GridTokenizer, codec
from .bdrate import bd_rate
from .maps import error_map, token_footprints, token_heatmap
from .metrics import ms_ssim, quality
from .pipeline import run
from .regions import mask_regions, region_maps
from .report import bd_rates, summarize, write_report
from .runner import (COLUMNS, DEFAULT_BASELINES, DEFAULT_BPP, Evaluation, Method, evaluate, read_results,
                     write_results)

__all__ = ["CODECS", "COLUMNS", "DEFAULT_BASELINES", "DEFAULT_BPP", "Codec", "Evaluation", "GridTokenizer", "Method",
           "bd_rate", "bd_rates", "codec", "error_map", "evaluate", "mask_regions", "ms_ssim", "quality",
           "read_results", "region_maps", "run", "summarize", "token_footprints", "token_heatmap", "write_report",
           "write_results"]
