"""The scale-out: tokenizing image corpora with Ray Data into Parquet / WebDataset shards
(:func:`tokenize_dataset`, ``adatok tokenize-dataset``), and streaming the shards into torch
training (:mod:`adatok.scale.loader`: an ``IterableDataset`` split across DDP ranks and data-loader
workers). See ``docs/scale.md``.

Ray, pyarrow and webdataset come with ``pip install 'adatok[scale]'``; they are imported when a
run starts, not by ``import adatok.scale``.
"""

from __future__ import annotations

from .pipeline import SHARD_SIZE, tokenize_dataset

__all__ = ["SHARD_SIZE", "tokenize_dataset"]
