"""The wavelet tokenizers: ``wavelet`` (CDF 9/7 + YCbCr) and ``wavelet-lossless`` (5/3 + RCT).

Pipeline: level shift (-128) -> colour transform -> 2-D lifting wavelet per channel -> integer
coefficients (for ``wavelet``: each band and channel scaled by the square root of its synthesis
energy gain and divided by ``step``, so that a unit of error costs the same in every band and
bit-planes come in order of RGB squared error) -> the embedded set-partitioning coder of
:mod:`adatok.wavelet.spiht`. Decoding replays the coder on any prefix and puts every coefficient at
the centre of what is still unknown about it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..core.budget import Bpp, Lossless, Quality, Tokens, check_budget
from ..core.errors import (AdatokError, BudgetError, ContainerError, ImageFormatError, InvalidTokensError,
                           TokenizerMismatchError)
from ..core.imageio import as_image
from ..core.metrics import psnr, ssim
from ..core.sequence import TokenSequence
from . import spiht
from .layout import POS_FIELDS, Layout, make_layout
from .transforms import (ICT_CHANNEL_GAINS, default_levels, dwt2, ict_forward, ict_inverse, idwt2,
                         rct_forward, rct_inverse, synthesis_gains)

VERSION = "1"


class WaveletTokenizer:
    """Training-free, embedded wavelet tokenizer (see ``docs/wavelet-language.md``).

    Args:
        name: registered name, ``"wavelet"`` or ``"wavelet-lossless"``.
        lossless: integer 5/3 wavelet and reversible colour transform (bit-exact at full length)
            instead of CDF 9/7 and YCbCr.
        step: quantiser step of the weighted 9/7 coefficients (lossy only); the full sequence of
            ``wavelet`` has a mean squared error of about ``step**2 / 12`` before rounding to 8 bits.
        max_levels: deepest decomposition used (fewer for small images).

    Example:
        >>> import numpy as np, adatok
        >>> tok = adatok.load("wavelet-lossless")
        >>> img = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
        >>> seq, = tok.encode([img])
        >>> bool((tok.decode([seq])[0] == img).all())
        True
    """

    vocab_size = spiht.VOCAB_SIZE
    pos_fields = POS_FIELDS
    version = VERSION
    payload_codec = None  # raw bytes until the entropy coder (issue 4) registers itself

    def __init__(self, name: str = "wavelet", lossless: bool = False, step: float = 1.0, max_levels: int = 6):
        self.name = name
        self.lossless = lossless
        self.step = float(step)
        self.max_levels = int(max_levels)

    def __repr__(self) -> str:
        return f"WaveletTokenizer(name={self.name!r}, lossless={self.lossless})"

    # --- analysis and synthesis ----------------------------------------------------------------

    def _weights(self, layout: Layout) -> np.ndarray:
        """Per-node scale of the 9/7 coefficients: sqrt(band gain * channel gain) / step."""
        gains = synthesis_gains(layout.shape, layout.levels)
        per_band = [gains[0]] + [g for triple in gains[1:] for g in triple]
        chan = ICT_CHANNEL_GAINS if layout.channels == 3 else (1.0,)
        sizes = [h * w for h, w in layout.bands]
        w = [np.repeat(np.sqrt(np.array(per_band) * chan[c]) / self.step, sizes) for c in range(layout.channels)]
        return np.concatenate(w)

    def _analyze(self, img: np.ndarray) -> tuple[Layout, np.ndarray, int]:
        """H x W x C uint8 -> (layout, signed integer coefficients per node, levels)."""
        h, w, c = img.shape
        levels = default_levels((h, w), self.max_levels)
        layout = make_layout((h, w), c, levels)
        if self.lossless:
            if c == 3:
                planes = rct_forward(img)
                planes[0] -= 128
            else:
                planes = img.transpose(2, 0, 1).astype(np.int64) - 128
            flat = layout.flatten([dwt2(p, levels, "5/3") for p in planes])
            return layout, flat.astype(np.int64), levels
        x = img.astype(np.float64) - 128.0
        planes = ict_forward(x) if c == 3 else x.transpose(2, 0, 1)
        flat = layout.flatten([dwt2(p, levels, "9/7") for p in planes])
        return layout, np.rint(flat * self._weights(layout)).astype(np.int64), levels

    def _synthesize(self, layout: Layout, coef: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`_analyze`: per-node coefficient estimates -> H x W x C uint8."""
        if self.lossless:
            planes = np.stack([idwt2(cf, "5/3") for cf in layout.unflatten(np.rint(coef).astype(np.int64))])
            if layout.channels == 3:
                planes[0] += 128
                img = rct_inverse(planes)
            else:
                img = planes.transpose(1, 2, 0) + 128
        else:
            planes = np.stack([idwt2(cf, "9/7") for cf in layout.unflatten(coef / self._weights(layout))])
            img = (ict_inverse(planes) if layout.channels == 3 else planes.transpose(1, 2, 0)) + 128.0
            img = np.rint(img)
        return np.clip(img, 0, 255).astype(np.uint8)

    # --- the contract --------------------------------------------------------------------------

    def encode(self, images: Sequence[np.ndarray], budget=None, roi=None) -> list[TokenSequence]:
        """Tokenize each image; ``budget`` picks each sequence's length (default: the full sequence).

        ``Tokens(k)`` gives ``min(k, full length)`` tokens; ``Lossless()`` the full sequence of
        ``wavelet-lossless``; ``Quality(psnr=..)`` / ``Quality(ssim=..)`` the shortest prefix that
        reaches the target, per image (the full sequence if even that does not).
        """
        check_budget(budget)
        if isinstance(images, np.ndarray):
            raise ImageFormatError("encode takes a list of images; wrap a single image as [image]")
        if roi is not None:
            raise AdatokError("regions of interest are not supported by this version of the wavelet tokenizer")
        if isinstance(budget, Bpp):
            raise BudgetError("Bpp budgets need the entropy-coded container, which this version does not "
                              "have yet; use Tokens(k) or Quality(psnr=..)")
        if isinstance(budget, Lossless) and not self.lossless:
            raise BudgetError(f"{self.name!r} is not lossless; use adatok.load('wavelet-lossless') for Lossless()")
        if isinstance(budget, Quality) and budget.region is not None:
            raise BudgetError("Quality(region='roi') needs a region of interest, which this version does not support")
        out = []
        for i, image in enumerate(images):
            img = as_image(image, what=f"image {i}")
            layout, coef, levels = self._analyze(img)
            mag = np.abs(coef)
            top = int(mag.max())
            nmax = top.bit_length() - 1  # -1 when every coefficient is 0
            limit = budget.k if isinstance(budget, Tokens) else -1
            ids, node, plane = spiht.encode_tokens(mag, coef < 0, layout.parent, layout.child_ptr,
                                                   layout.child_idx, layout.has_l, layout.roots, nmax, limit)
            pos = np.concatenate([plane[:, None].astype(np.int32), layout.node_pos[node]], axis=1)
            params = {"levels": levels, "nmax": nmax, "channels": img.shape[2]}
            if not self.lossless:
                params["step"] = self.step
            seq = TokenSequence(ids, pos, np.shape(image), self.name, self.version, params, self.pos_fields)
            if isinstance(budget, Quality):
                seq = seq.prefix(self._shortest_prefix(seq, img, budget))
            out.append(seq)
        return out

    def decode(self, seqs: Sequence[TokenSequence]) -> list[np.ndarray]:
        """Decode each sequence (any prefix) to a uint8 image of the encoded shape."""
        if isinstance(seqs, TokenSequence):
            raise InvalidTokensError("decode takes a list of sequences; wrap a single one as [seq]")
        return [self._decode_one(s) for s in seqs]

    def sequence_from_ids(self, ids: np.ndarray, header: dict) -> TokenSequence:
        """Rebuild a sequence (positions included) from ids and a container header."""
        self._check_header(header["tokenizer"], header["version"])
        try:
            shape = tuple(int(v) for v in header["shape"])
            params = {k: header["params"][k] for k in ("levels", "nmax", "channels")}
            if not self.lossless:
                params["step"] = float(header["params"]["step"])
            layout = self._layout(shape, params)
        except (KeyError, ValueError, TypeError, AdatokError) as exc:
            raise ContainerError(f"header parameters are invalid ({exc}): the file is corrupt") from None
        ids = np.asarray(ids, dtype=np.int32)[: header["n_tokens"]]
        _, _, _, node, plane = self._replay(ids, layout, params)
        pos = np.concatenate([plane[:, None].astype(np.int32), layout.node_pos[node]], axis=1)
        return TokenSequence(ids, pos, shape, self.name, self.version, params, self.pos_fields)

    # --- helpers -------------------------------------------------------------------------------

    def _check_header(self, name: str, version: str) -> None:
        if name != self.name:
            raise TokenizerMismatchError(f"this sequence was made by {name!r}, not {self.name!r}: "
                                         f"decode it with adatok.load({name!r})")
        if version != self.version:
            raise TokenizerMismatchError(f"this sequence was made by {name!r} version {version}, this is "
                                         f"version {self.version}: use the adatok that made it")

    def _layout(self, shape: tuple[int, ...], params: dict) -> Layout:
        if len(shape) not in (2, 3) or min(shape[:2]) < 1:
            raise InvalidTokensError(f"invalid image shape {shape} in the sequence")
        channels = shape[2] if len(shape) == 3 else 1
        if channels not in (1, 3) or channels != params["channels"]:
            raise InvalidTokensError(f"invalid channel count in the sequence (shape {shape})")
        levels = int(params["levels"])
        if levels != default_levels(shape[:2], self.max_levels):
            raise InvalidTokensError(f"the sequence's {levels} levels do not fit its shape {shape}")
        if not -1 <= int(params["nmax"]) < 62:
            raise InvalidTokensError(f"invalid top bit-plane {params['nmax']} in the sequence")
        return make_layout((shape[0], shape[1]), channels, levels)

    def _replay(self, ids: np.ndarray, layout: Layout, params: dict):
        if len(ids) and (ids.min() < 0 or ids.max() >= self.vocab_size):
            bad = int(np.nonzero((ids < 0) | (ids >= self.vocab_size))[0][0])
            raise InvalidTokensError(f"token id {int(ids[bad])} at index {bad} is out of range: "
                                     f"{self.name} ids are 0..{self.vocab_size - 1}")
        status, at, value, low, neg, node, plane = spiht.decode_tokens(
            ids.astype(np.uint8), layout.child_ptr, layout.child_idx, layout.has_l, layout.roots,
            int(params["nmax"]))
        if status == spiht.BAD_TOKEN:
            raise InvalidTokensError(f"token {spiht.TOKEN_NAMES[ids[at]]} (id {int(ids[at])}) at index {at} "
                                     "cannot stand there: the sequence is corrupt or was edited")
        if status == spiht.TOO_LONG:
            raise InvalidTokensError(f"the sequence has {len(ids) - at} tokens past the end of its stream "
                                     f"(it ends at {at})")
        return value, low, neg, node, plane

    def _decode_one(self, seq: TokenSequence) -> np.ndarray:
        if not isinstance(seq, TokenSequence):
            raise InvalidTokensError(f"expected a TokenSequence, got {type(seq).__name__}")
        self._check_header(seq.tokenizer, seq.version)
        layout = self._layout(seq.shape, seq.params)
        value, low, neg, _, _ = self._replay(seq.ids, layout, seq.params)
        img = self._synthesize(layout, spiht.reconstruct(value, low, neg))
        return img.reshape(seq.shape)

    def _shortest_prefix(self, seq: TokenSequence, img: np.ndarray, q: Quality) -> int:
        """Smallest k whose decoded prefix reaches the target (bisection; quality rises with k)."""
        ref = img.reshape(seq.shape)

        def score(k: int) -> float:
            out = self._decode_one(seq.prefix(k))
            return psnr(ref, out) if q.psnr is not None else ssim(ref, out)

        target = q.psnr if q.psnr is not None else q.ssim
        lo, hi = 0, len(seq)
        if score(hi) < target:
            return hi
        while lo < hi:
            mid = (lo + hi) // 2
            if score(mid) >= target:
                hi = mid
            else:
                lo = mid + 1
        return hi
