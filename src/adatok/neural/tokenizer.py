"""The learned tokenizer behind the contract: codes of K latent slots, any prefix decodes.

A sequence's ids are the codes of the first ``n`` latent slots (``0 .. vocab_size - 1``): FSQ
codes, and with ``vq_first`` (the shipped checkpoint) a k-means centroid index in slot 0;
each token's position is its slot index (``pos_fields == ("slot",)``). Bytes: every id is written
in ``ceil(log2(vocab_size))`` bits, big-endian, so a cut payload gives the longest whole-token prefix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..core.budget import Bpp, Lossless, Quality, Tokens, check_budget, too_small
from ..core.errors import (AdatokError, BudgetError, ContainerError, ImageFormatError, InvalidTokensError,
                           not_lossless_cli)
from ..core.imageio import as_image
from ..core.checks import shown
from ..core.protocol import image_list, named, sequence_list
from ..core.metrics import ssim as ssim_metric
from ..core.sequence import OTHER_WEIGHTS, TokenSequence, check_maker, container_overhead
from ..core.stepper import SlotStepper, check_starts, start_shape
from .model import Autoencoder
from .trainer import FORMAT, load_model, to_uint8


POS_FIELDS = ("slot",)
_BATCH = 256


def token_bits(vocab_size: int) -> int:
    """The bits each token id takes in the ``.atk`` payload of a vocabulary of ``vocab_size`` codes
    (the payload codec is ``fixed{bits}``)."""
    return max(1, math.ceil(math.log2(vocab_size)))


def fashion_mnist_tokenizer(name: str):
    """The learned tokenizer ``name`` for the Fashion-MNIST measurement tools (``python -m
    adatok.neural.measure|halting|classifier``): one of 28 x 28 gray images, else ``SystemExit``
    with an ``error:`` line (a tokenizer of other images failed inside them with a traceback)."""
    import adatok

    try:
        tok = adatok.load(name)
    except AdatokError as exc:
        raise SystemExit(f"error: {exc}") from None
    if getattr(tok, "expects", None) != (28, 28, 1) or not hasattr(tok, "quality_curves"):
        raise SystemExit(f"error: {name} is not a learned tokenizer of 28x28 gray images: this measures one on "
                         "Fashion-MNIST")
    return tok


def count(text: str) -> int:
    """An ``argparse`` type for the measurement tools' counts (images, steps): a whole number >= 1
    (zero images ended in a division by zero or in torch's and numpy's own errors)."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"a whole number >= 1, got {text!r}")
    return value


def shortest_reaching(scores: np.ndarray, target: float) -> np.ndarray:
    """Each row's first prefix length whose score (``(N, K + 1)``, lengths 0..K) reaches ``target``;
    K where none does."""
    ok = scores >= target
    return np.where(ok.any(1), ok.argmax(1), scores.shape[1] - 1).astype(np.int64)


class NeuralTokenizer:
    """A trained checkpoint as a tokenizer (see :mod:`adatok.neural`).

    Example:
        >>> import adatok                                   # doctest: +SKIP
        >>> tok = adatok.load("fashion-mnist-32")           # doctest: +SKIP
        >>> seq, = tok.encode([img], adatok.Tokens(8))      # doctest: +SKIP
    """

    pos_fields = POS_FIELDS
    supports_roi = False  # learned slots have no place in the image: encode refuses roi

    def __init__(self, model: Autoencoder, name: str, version: str, trained_on: str | None = None):
        self.model = model.eval()
        self.trained_on = trained_on  # the training data ("fashion-mnist" or a folder), when known
        self.cfg = model.cfg
        self.name = name
        self.version = version
        self.vocab_size = self.cfg.vocab_size
        self.tokens = self.cfg.tokens
        self.bits = token_bits(self.vocab_size)
        self.payload_codec = self
        c = self.cfg.channels
        self.expects = (self.cfg.image_size, self.cfg.image_size, c)

    @classmethod
    def from_folder(cls, folder: str | Path, name: str | None = None) -> NeuralTokenizer:
        """Load a checkpoint folder (``config.json`` + ``model.safetensors``)."""
        model, config, digest = load_model(Path(folder), digest=True)
        return cls(model, name or config["name"], f"{FORMAT}+{digest}", trained_on=(config.get("train") or {}).get("data"))

    def __repr__(self) -> str:
        return f"NeuralTokenizer(name={self.name!r}, K={self.tokens}, vocab={self.vocab_size})"

    # --- images <-> tensors ----------------------------------------------------------------------

    def _check_image(self, image: np.ndarray, i: int) -> np.ndarray:
        img = as_image(image, what=f"image {i}")
        if img.shape != self.expects:
            h, w, c = self.expects
            kind = "gray" if c == 1 else "RGB"
            raise ImageFormatError(
                f"{self.name} was trained on {h}x{w}x{c} {kind} images (H x W x C); image {i} is "
                f"{'x'.join(map(str, img.shape))}: resize it to {h}x{w} {kind}, or use the wavelet tokenizer, "
                "which takes any size")
        return img

    @torch.no_grad()
    def _codes(self, imgs: list[np.ndarray]) -> np.ndarray:
        out = []
        for i in range(0, len(imgs), _BATCH):
            x = torch.from_numpy(np.stack(imgs[i : i + _BATCH])).permute(0, 3, 1, 2).float() / 127.5 - 1.0
            out.append(self.model.encode(x)[1].numpy())
        return np.concatenate(out).astype(np.int32) if out else np.zeros((0, self.tokens), np.int32)

    @torch.no_grad()
    def _render(self, codes: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """Codes (N, K) and kept lengths (N,) -> uint8 images (N, H, W, C), in batches."""
        out = []
        for i in range(0, len(codes), _BATCH):
            c = torch.from_numpy(np.ascontiguousarray(codes[i : i + _BATCH], dtype=np.int64))
            k = torch.from_numpy(np.ascontiguousarray(keep[i : i + _BATCH], dtype=np.int64))
            out.append(to_uint8(self.model.decode_codes(c, k)))
        return np.concatenate(out) if out else np.zeros((0, *self.expects), np.uint8)

    def _sequence(self, ids: np.ndarray, shape: tuple[int, ...]) -> TokenSequence:
        ids = np.asarray(ids, np.int32)
        return TokenSequence(ids, np.arange(len(ids), dtype=np.int32)[:, None], shape, self.name, self.version,
                             {}, POS_FIELDS)

    # --- the contract ----------------------------------------------------------------------------

    def encode(self, images: Sequence[np.ndarray], budget=None, roi=None,
               fixed_header: bool = False) -> list[TokenSequence]:
        """Tokenize each image; ``budget`` picks each sequence's length (default: all K tokens).

        ``Tokens(k)``: ``min(k, K)`` tokens. ``Bpp(x)``: the most tokens whose bytes fit (the whole
        ``.atk`` file, or with ``header=False`` the token stream alone).
        ``Quality(psnr=..)`` / ``Quality(ssim=..)``: each image's own shortest prefix reaching the
        target (all K if none does), found by decoding every prefix length of the whole batch at once.

        ``fixed_header`` (True or False) is taken as the wavelet tokenizers take it, and changes
        nothing: a learned sequence's header holds only its image shape, the same for every image of
        a shape (what a :meth:`stepper` started from that shape has), with no top bit-plane of its own.
        """
        check_budget(budget)
        if not isinstance(fixed_header, bool | np.bool_):  # (as the wavelet tokenizers check it)
            raise ImageFormatError(f"fixed_header is True or False, got {shown(fixed_header)}")
        images, roi = image_list(images, roi)
        if any(r is not None for r in roi):
            raise BudgetError(f"{self.name} is a learned tokenizer and does not steer tokens by region; "
                              "use the wavelet tokenizer for regions of interest")
        if isinstance(budget, Lossless):
            raise BudgetError(f"{self.name!r} is not lossless; use adatok.load('wavelet-lossless') for Lossless()",
                              cli=not_lossless_cli(self.name))
        if isinstance(budget, Quality) and budget.region is not None:
            raise BudgetError(f"{self.name} does not support Quality(region=...): it has no regions of interest")
        imgs = [self._check_image(im, i) for i, im in enumerate(images)]
        shapes = [tuple(np.shape(im)) for im in images]
        codes = self._codes(imgs)
        K = self.tokens
        if budget is None:
            lengths = np.full(len(imgs), K)
        elif isinstance(budget, Tokens):
            lengths = np.full(len(imgs), min(int(budget.k), K))
        elif isinstance(budget, Bpp):
            lengths = np.array([self._bpp_length(s, budget) for s in shapes], dtype=np.int64)
        else:
            lengths = self._quality_lengths(imgs, codes, budget)
        return [self._sequence(codes[i, : lengths[i]], shapes[i]) for i in range(len(imgs))]

    def decode(self, seqs: Sequence[TokenSequence]) -> list[np.ndarray]:
        """Decode each sequence (any prefix, 0..K tokens) to a uint8 image of the encoded shape."""
        seqs = sequence_list(seqs)
        codes = np.zeros((len(seqs), self.tokens), np.int32)
        keep = np.zeros(len(seqs), np.int64)
        for i, seq in enumerate(seqs):
            with named(i):  # (sequence 5: ..., as encode names an image)
                self._check_sequence(seq)
            codes[i, : len(seq)] = seq.ids
            keep[i] = len(seq)
        out = self._render(codes, keep)
        return [np.ascontiguousarray(out[i].reshape(seq.shape)) for i, seq in enumerate(seqs)]

    def stepper(self, starts: Sequence[tuple[int, ...] | TokenSequence], nmax: int | None = None) -> SlotStepper:
        """Start B sequences to grow one token at a time (see :class:`~adatok.core.stepper.SlotStepper`):
        the next token of a sequence is its next slot, any id may stand there, and a sequence is
        complete at K tokens. Each start is an image shape (this checkpoint's, an empty sequence)
        or a sequence of this tokenizer (to go on from). ``images()`` decodes the batch at once.

        ``nmax``, a wavelet stepper's top bit-plane, is refused unless ``None``
        (:class:`~adatok.InvalidTokensError`): a learned tokenizer has no bit-planes.
        """
        if nmax is not None:
            raise InvalidTokensError(f"the learned tokenizer {self.name} has no bit-planes: nmax is for wavelet "
                                     f"tokenizers (got nmax={shown(nmax)}); leave it out")
        starts = check_starts(starts)
        shapes, prefixes = [], []
        for i, start in enumerate(starts):
            if isinstance(start, TokenSequence):
                with named(i, "start"):  # (start 5: ..., as a wavelet stepper names it)
                    self._check_sequence(start, what=f"start {i}", use="step it")
                shapes.append(tuple(start.shape))
                prefixes.append(start.ids)
                continue
            shape = start_shape(start, i)  # (whole numbers: 28.0 is no side)
            if shape not in (self.expects, self.expects[:2] if self.expects[2] == 1 else None):
                h, w, c = self.expects
                raise ImageFormatError(f"start {i}: {self.name} makes {h}x{w} images with {c} channel(s), shape "
                                       f"{self.expects}; got {start!r}")
            shapes.append(shape)
            prefixes.append(np.zeros(0, np.int32))
        slots = np.arange(self.tokens, dtype=np.int32)[:, None]
        return SlotStepper(self.vocab_size, POS_FIELDS, [slots] * len(shapes), prefixes, self._sequence, self.decode,
                           [(shape,) for shape in shapes])

    def decode_prefixes(self, seq: TokenSequence, ks: Sequence[int]) -> list[np.ndarray]:
        """The images of several prefixes of one sequence, in one batch."""
        self._check_sequence(seq)
        ks = [len(seq.prefix(k)) for k in ks]  # (checked as prefix checks them: whole numbers >= 0)
        codes = np.zeros((len(ks), self.tokens), np.int32)
        codes[:, : len(seq)] = seq.ids
        out = self._render(codes, np.array(ks))
        return [np.ascontiguousarray(o.reshape(seq.shape)) for o in out]

    # --- budgets ---------------------------------------------------------------------------------

    def _payload_len(self, n: int) -> int:
        return -(-n * self.bits // 8)

    def _bpp_length(self, shape: tuple[int, ...], budget: Bpp) -> int:
        total = budget.nbytes(shape)
        probe = self._sequence(np.zeros(0, np.int32), shape)
        for k in range(self.tokens, -1, -1):
            n = self._payload_len(k)
            if (container_overhead(probe, n, self.codec_name) if budget.header else 0) + n <= total:
                return k
        raise too_small(budget, total, shape, container_overhead(probe, 0, self.codec_name))

    def quality_curves(self, imgs: list[np.ndarray], codes: np.ndarray, metric: str = "psnr") -> np.ndarray:
        """``(N, K + 1)``: the PSNR (dB; ``inf`` when exact) or SSIM of every prefix length 0..K of
        each image, decoded for the whole batch at once. ``codes`` are the images' ``(N, K)`` codes."""
        K = self.tokens
        n = len(imgs)
        out = np.zeros((n, K + 1))
        if n == 0:
            return out
        ref = np.stack(imgs).astype(np.float64)
        step = max(1, _BATCH * 4 // (K + 1))  # images per chunk, (K + 1) decodes each
        for s in range(0, n, step):
            e = min(n, s + step)
            rep = np.repeat(codes[s:e], K + 1, axis=0)
            ks = np.tile(np.arange(K + 1), e - s)
            rec = self._render(rep, ks).reshape(e - s, K + 1, *self.expects).astype(np.float64)
            if metric == "psnr":
                mse = ((rec - ref[s:e, None]) ** 2).reshape(e - s, K + 1, -1).mean(-1)
                with np.errstate(divide="ignore"):
                    out[s:e] = np.where(mse == 0, np.inf, 10 * np.log10(255.0**2 / np.maximum(mse, 1e-300)))
            else:
                out[s:e] = [[ssim_metric(imgs[s + j], rec[j, k].astype(np.uint8)) for k in range(K + 1)]
                            for j in range(e - s)]
        return out

    def _quality_lengths(self, imgs: list[np.ndarray], codes: np.ndarray, budget: Quality) -> np.ndarray:
        """Each image's shortest prefix reaching the target: every length 0..K decoded for the
        whole batch at once (an exact search: no assumption that quality rises with k)."""
        if len(imgs) == 0:
            return np.zeros(0, np.int64)
        score = self.quality_curves(imgs, codes, "psnr" if budget.psnr is not None else "ssim")
        return shortest_reaching(score, budget.psnr if budget.psnr is not None else budget.ssim)

    # --- bytes -----------------------------------------------------------------------------------

    @property
    def codec_name(self) -> str:
        return f"fixed{self.bits}"

    def pack(self, seq: TokenSequence) -> bytes:
        """Every id in ``bits`` bits, big-endian, concatenated (the payload of the ``.atk`` bytes)."""
        self._check_sequence(seq)
        ids = seq.ids.astype(np.int64)
        shifts = np.arange(self.bits - 1, -1, -1)
        return np.packbits(((ids[:, None] >> shifts) & 1).astype(np.uint8).reshape(-1)).tobytes()

    def unpack(self, header: dict, payload: bytes) -> np.ndarray:
        """Ids from a payload; a cut payload gives the whole tokens it holds. The header is checked
        first (:class:`~adatok.ContainerError`): its shape, no params, at most K tokens, and exactly
        the payload length they take."""
        check_maker(header["tokenizer"], header["version"], self, OTHER_WEIGHTS)
        shape, n, nbytes = tuple(header["shape"]), int(header["n_tokens"]), int(header["payload_len"])
        if shape not in (self.expects, self.expects[:2] if self.expects[2] == 1 else None):
            raise ContainerError(f"the header's image shape {shape} is not what {self.name} makes ({self.expects}): "
                                 "the file is corrupt")
        if header["params"]:
            raise ContainerError(f"the header has parameters {self.name} does not take: the file is corrupt")
        if n > self.tokens or nbytes != self._payload_len(n):
            raise ContainerError(f"the header says {n} tokens in {nbytes} bytes; {self.name} codes at most "
                                 f"{self.tokens}, each in {self.bits} bits: the file is corrupt")
        n = min(n, len(payload) * 8 // self.bits)
        bits = np.unpackbits(np.frombuffer(payload, np.uint8))[: n * self.bits].reshape(n, self.bits)
        return (bits.astype(np.int64) << np.arange(self.bits - 1, -1, -1)).sum(1).astype(np.int32)

    def sequence_from_ids(self, ids: np.ndarray, header: dict) -> TokenSequence:
        """Rebuild a sequence from ids and a container header."""
        check_maker(header["tokenizer"], header["version"], self, OTHER_WEIGHTS)
        shape = tuple(int(v) for v in header["shape"])
        ids = np.asarray(ids, np.int32)[: int(header["n_tokens"])]
        seq = self._sequence(ids, shape)
        try:
            self._check_sequence(seq)
        except InvalidTokensError as exc:
            raise ContainerError(f"{exc}: the file is corrupt") from None
        return seq

    # --- checks ----------------------------------------------------------------------------------

    def _check_sequence(self, seq: TokenSequence, what: str = "this sequence", use: str = "decode it") -> None:
        """Refuse a sequence this tokenizer cannot decode; ``what`` and ``use`` as :func:`check_maker`
        takes them (a stepper's start is stepped)."""
        check_maker(seq.tokenizer, seq.version, self, OTHER_WEIGHTS, what=what, use=use)
        shape = tuple(seq.shape)
        if shape not in (self.expects, self.expects[:2] if self.expects[2] == 1 else None):
            raise InvalidTokensError(f"the sequence's image shape {shape} is not what {self.name} makes "
                                     f"({self.expects})")
        if len(seq) > self.tokens:
            raise InvalidTokensError(f"the sequence has {len(seq)} tokens; {self.name} makes at most {self.tokens}")
        if seq.params:  # (its bytes would hold them, and from_bytes refuses such a header)
            raise InvalidTokensError(f"{self.name} sequences have no parameters, this one has {dict(seq.params)}")
        if len(seq) and (seq.ids.min() < 0 or seq.ids.max() >= self.vocab_size):
            bad = int(np.nonzero((seq.ids < 0) | (seq.ids >= self.vocab_size))[0][0])
            raise InvalidTokensError(f"token id {int(seq.ids[bad])} at index {bad} is out of range: "
                                     f"{self.name} ids are 0..{self.vocab_size - 1}")
