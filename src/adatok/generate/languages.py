"""What a generator reads and writes: a *language* turns images into training sequences (ids and
the position of every next token) and grows new sequences through its tokenizer's stepper.

* :class:`WaveletLanguage`: the decisions of ``wavelet`` / ``wavelet-lossless`` with the fixed
  header of their shape (``encode(..., fixed_header=True)``, see ``docs/stepper.md``); a training
  sequence is an image's shortest prefix reaching a ``Quality`` target.
* :class:`WordLanguage`: the same decisions, ``n`` to a token (``wavelet-w8``: the words of
  ``docs/words.md``), with the same position features, those of each word's first decision.
* :class:`SlotLanguage`: the slots of a learned tokenizer (``fashion-mnist-32``); also a
  quality-target prefix.
* :class:`PixelLanguage`: the baseline: the 8-bit pixels of the image in raster order (784 ids of
  256 values for Fashion-MNIST), always all of them.

Every language gives the model the same two inputs a step: integer position fields and float
position fields (:meth:`features`), computed from ``next_pos()`` rows (and the legal mask, which
says what kind of decision comes next), so that training (from the finished sequences) and
sampling (from the stepper) see exactly the same numbers.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import adatok
from adatok import AdatokError, InvalidTokensError, Quality, TokenSequence
from adatok.core.registry import registered
from adatok.wavelet import spiht
from adatok.wavelet.tokenizer import WaveletTokenizer
from adatok.wavelet.words import WordTokenizer
from adatok.wavelet.layout import make_layout
from adatok.wavelet.stepper import CONTEXT_FIELDS, CONTEXT_STATES
from adatok.wavelet.transforms import default_levels

#: The canvas (``canvas=True``): the image averaged to this many blocks a side, and a patch this
#: many pixels a side of the half-resolution image around the next coefficient's place.
CANVAS_GRID, CANVAS_PATCH = 7, 5


def _pooling(n: int, g: int) -> np.ndarray:
    """(g, n) matrix averaging ``n`` samples into ``g`` nearly equal runs."""
    which = np.arange(n) * g // n
    out = (which[None, :] == np.arange(g)[:, None]).astype(np.float32)
    return out / np.maximum(out.sum(1, keepdims=True), 1)


#: Kind of a wavelet decision, by token id; ``KIND_END``: the stream has ended.
_KIND_OF_ID = np.array([0, 0, 0, 1, 1, 2, 2, 3, 3], np.int64)
KIND_END = 4


@dataclass
class Corpus:
    """Training sequences of one language: for sequence ``i``, ids ``ids[starts[i]:starts[i+1]]``
    (n tokens), and position features of its n + 1 steps (the last one: where the token after the
    prefix would stand, at which the model writes END) at rows ``starts[i] + i`` on."""

    ids: np.ndarray  # (sum n,) int16 or int32
    starts: np.ndarray  # (N + 1,) int64
    ints: np.ndarray  # (sum (n + 1), len(int_sizes)) int16
    floats: np.ndarray  # (sum (n + 1), float_fields) float32
    labels: np.ndarray  # (N,) int64

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.starts)

    def save(self, path, key: str = "") -> None:
        """Write the corpus as one ``.npz`` (atomically), with ``key``: what it was made from."""
        from adatok.core.imageio import atomic_path

        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, ids=self.ids, starts=self.starts, ints=self.ints, floats=self.floats, labels=self.labels,
                         key=np.array(key))

    @classmethod
    def load(cls, path) -> Corpus:
        with np.load(path) as z:
            return cls(z["ids"], z["starts"], z["ints"], z["floats"], z["labels"])

    @staticmethod
    def load_key(path) -> str | None:
        """The ``key`` a corpus file was saved with (``None``: none, or not a readable corpus)."""
        try:
            with np.load(path) as z:
                return str(z["key"]) if "key" in z.files else None
        except Corpus.UNREADABLE:
            return None

    #: What reading a damaged corpus file raises (a file cut short is no zip: BadZipFile; a member cut
    #: short, zlib.error), beside the errors of a file that is not there or not an array file.
    UNREADABLE = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


class WaveletLanguage:
    """Decisions of a wavelet tokenizer, on images of one shape, with that shape's fixed header.

    Two options give each step what the decoder knows as it stands, beside where the next token
    stands (the decoder's *state*; a training sequence's is found by replaying it through a stepper,
    :meth:`states`, so that it is what sampling reads):

    * ``context=True``: the states of the next coefficient, its parent, grandparent and four
      neighbours (:meth:`WaveletStepper.context <adatok.wavelet.stepper.WaveletStepper.context>`),
      as seven more integer fields;
    * ``canvas=True``: the image the prefix decodes to, as floats after the position's: the whole
      image averaged to ``CANVAS_GRID`` x ``CANVAS_GRID`` blocks and the ``CANVAS_PATCH`` x
      ``CANVAS_PATCH`` pixels of the half-resolution image around the next coefficient's place.
    """

    position = "wavelet"
    float_fields = 2
    variable_length = True  # END may come after any token
    per_token = 1  # decisions a token stands for

    #: the tokenizers whose tokens this language is written in
    family: type = WaveletTokenizer

    def __init__(self, tokenizer: str, shape: tuple[int, ...], target: Quality | None = None,
                 context: bool = False, canvas: bool = False):
        self.tok = adatok.load(tokenizer)
        if not isinstance(self.tok, self.family):  # (a WordTokenizer is no WaveletTokenizer, nor the reverse)
            raise AdatokError(f"{type(self).__name__} is written in tokens of a {self.family.__name__}; "
                              f"{tokenizer!r} is not one")
        self.name = tokenizer
        self.shape = tuple(shape)
        self.target = target
        self.vocab_size = self.tok.vocab_size
        channels = shape[2] if len(shape) == 3 else 1
        levels = default_levels(shape[:2], self.tok.max_levels)
        self.top = int(self.tok.top_plane(self.shape))
        layout = make_layout(shape[:2], channels, levels)
        self.levels = levels
        # the shape of each (level, band) of the coded image, to put a coefficient's place on [0, 1]
        self.band_shape = np.zeros((levels + 1, 4, 2), np.float64)
        for k, (h, w) in enumerate(layout.bands):
            if k == 0:
                self.band_shape[levels, 0] = (h, w)
            else:
                i, b = divmod(k - 1, 3)
                self.band_shape[levels - i, b + 1] = (h, w)
        self.context, self.canvas = bool(context), bool(canvas)
        self.int_sizes = (self.top + 1, levels + 1, 4, channels, KIND_END + 1) \
            + ((CONTEXT_STATES,) * len(CONTEXT_FIELDS) if self.context else ())
        self.canvas_fields = channels * (CANVAS_GRID**2 + CANVAS_PATCH**2) if self.canvas else 0
        h, w = shape[:2]
        self._pool = (_pooling(h, CANVAS_GRID), _pooling(w, CANVAS_GRID), _pooling(h, -(-h // 2)),
                      _pooling(w, -(-w // 2)))

    def describe(self) -> dict:
        """The language as the checkpoint's ``config["language"]`` keeps it (:func:`language_from`
        makes the language again from it)."""
        out = {"language": "wavelet", "tokenizer": self.name, "shape": list(self.shape),
               "target": None if self.target is None else {"psnr": self.target.psnr, "ssim": self.target.ssim}}
        return out | ({"context": True} if self.context else {}) | ({"canvas": True} if self.canvas else {})

    @property
    def reads_state(self) -> bool:
        """Whether a step reads the decoder's state (``context`` or ``canvas``)."""
        return self.context or self.canvas

    def features(self, pos: np.ndarray, kinds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Position features of next tokens: ``pos`` (n, 6) rows (plane, level, band, channel, y, x;
        anything where the kind is :data:`KIND_END`) and their decision ``kinds`` (n,)."""
        pos = np.asarray(pos, np.int64)
        end = kinds == KIND_END
        plane, level, band, chan = (np.where(end, 0, pos[:, j]) for j in range(4))
        size = self.band_shape[level, band]
        with np.errstate(invalid="ignore", divide="ignore"):
            yx = np.where(end[:, None], 0.0, (pos[:, 4:6] + 0.5) / np.maximum(size, 1))
        ints = np.stack([plane, level, band, chan, kinds], 1).astype(np.int16)
        return ints, yx.astype(np.float32)

    @staticmethod
    def kinds_of(legal: np.ndarray) -> np.ndarray:
        """The kind of the next decision from a stepper's legal mask (B, 9)."""
        kinds = np.full(len(legal), KIND_END, np.int64)
        for ids, kind in (((spiht.SIG0, spiht.SIG_POS), 0), ((spiht.D0, spiht.D1), 1), ((spiht.L0, spiht.L1), 2),
                          ((spiht.REF0, spiht.REF1), 3)):
            kinds[legal[:, list(ids)].any(1)] = kind
        return kinds

    def encode(self, images: Sequence[np.ndarray]) -> list[tuple[TokenSequence, int]]:
        """Each image's full fixed-header sequence and the length of its training prefix."""
        fulls = self.tok.encode(list(images), fixed_header=True)
        if self.target is None:
            return [(s, len(s)) for s in fulls]
        short = self.tok.encode(list(images), self.target, fixed_header=True)
        return [(f, len(s)) for f, s in zip(fulls, short, strict=True)]

    def rows(self, full: TokenSequence, n: int, state: tuple[np.ndarray, np.ndarray] | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Training rows of a prefix of length ``n`` of ``full``: ids (n,), ints and floats (n + 1).
        A language that reads the decoder's state needs the prefix's (from :meth:`states`)."""
        ids = full.ids[:n]
        if n < len(full):
            pos, kinds = full.pos[: n + 1], _KIND_OF_ID[full.ids[: n + 1]]
        else:
            pos = np.concatenate([full.pos[:n], np.zeros((1, full.pos.shape[1]), np.int32)])
            kinds = np.concatenate([_KIND_OF_ID[ids], [KIND_END]])
        ints, floats = self.features(pos, kinds)
        return (ids, *self._with_state(ints, floats, state))

    def _with_state(self, ints: np.ndarray, floats: np.ndarray, state) -> tuple[np.ndarray, np.ndarray]:
        """``ints`` and ``floats`` with the decoder's ``state`` (context ints, canvas floats) after them."""
        if not self.reads_state:
            return ints, floats
        if state is None or len(state[0]) != len(ints):
            raise ValueError(f"this language reads the decoder's state: give {len(ints)} rows of it (states())")
        return np.concatenate([ints, state[0].astype(np.int16)], 1), np.concatenate([floats, state[1]], 1)

    def _state(self, st, which: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The decoder's state before the next decision of a decision stepper's rows (``which``:
        these rows only): context ints (B, 7 or 0) and canvas floats (B, canvas_fields)."""
        rows = np.arange(len(st)) if which is None else np.asarray(which)
        ctx = st.context()[rows] if self.context else np.zeros((len(rows), 0), np.int8)
        if not self.canvas:
            return ctx, np.zeros((len(rows), 0), np.float32)
        _, yx = self.features(st.next_pos()[rows], kinds := self.kinds_of(st.legal()[rows]))
        images = np.stack(st.images(rows.tolist())).reshape(len(rows), *self.shape[:2], -1)
        return ctx, self._canvas(images, yx, kinds == KIND_END)

    def _canvas(self, images: np.ndarray, yx: np.ndarray, end: np.ndarray) -> np.ndarray:
        """Canvas floats of ``images`` (B, H, W, C) uint8 with the next coefficients' places ``yx``
        (on [0, 1]; the patch is zero where ``end``)."""
        py, px, hy, hx = self._pool
        img = images.astype(np.float32) / 255.0 - 0.5
        grid = np.einsum("gh,bhwc,kw->bcgk", py, img, px).reshape(len(img), -1)
        half = np.einsum("gh,bhwc,kw->bcgk", hy, img, hx)  # (B, C, H2, W2)
        r = CANVAS_PATCH // 2
        half = np.pad(half, ((0, 0), (0, 0), (r, r), (r, r)))
        cy = np.minimum((yx[:, 0] * hy.shape[0]).astype(np.int64), hy.shape[0] - 1)
        cx = np.minimum((yx[:, 1] * hx.shape[0]).astype(np.int64), hx.shape[0] - 1)
        d = np.arange(CANVAS_PATCH)
        patch = half[np.arange(len(img))[:, None, None, None], np.arange(img.shape[3])[None, :, None, None],
                     (cy[:, None, None, None] + d[None, None, :, None]), (cx[:, None, None, None] + d[None, None, None, :])]
        patch = np.where(end[:, None, None, None], 0.0, patch).reshape(len(img), -1)
        return np.concatenate([grid, patch], 1).astype(np.float32)

    def _decisions(self, full: TokenSequence) -> np.ndarray:
        return np.asarray(full.ids, np.int64)

    def states(self, pairs: Sequence[tuple[TokenSequence, int]]) -> list[tuple[np.ndarray, np.ndarray] | None]:
        """For each ``(full, n)`` (as :meth:`encode` gives them): the decoder's state (see the class)
        before each of the prefix's n tokens and after them (n + 1 rows of context ints and of canvas
        floats), found by pushing the sequences' decisions through one stepper together, so that
        they are the numbers sampling reads."""
        if not self.reads_state:
            return [None] * len(pairs)
        decisions = [self._decisions(full) for full, _ in pairs]
        per = self.per_token
        stop = np.array([min(n * per, len(d)) for d, (_, n) in zip(decisions, pairs, strict=True)], np.int64)
        ctx = [np.zeros((n + 1, len(CONTEXT_FIELDS) if self.context else 0), np.int8) for _, n in pairs]
        canvas = [np.zeros((n + 1, self.canvas_fields), np.float32) for _, n in pairs]
        st = self.stepper(len(pairs))
        st = getattr(st, "decisions", st)  # a word stepper: its decisions, read at each word's first
        new = np.full(len(pairs), -1, np.int64)
        for t in range(int(stop.max(initial=0)) + 1):
            here = np.nonzero(t <= stop)[0] if t % per == 0 else []
            if len(here):
                c, f = self._state(st, here)
                for j, b in enumerate(here):
                    ctx[b][t // per], canvas[b][t // per] = c[j], f[j]
            go = t < stop
            if not go.any():
                break
            new[:] = -1
            new[go] = [decisions[b][t] for b in np.nonzero(go)[0]]
            st.push(new)
        for b, (_, n) in enumerate(pairs):  # a last word padded past the stream's end: END after it
            if n * per > len(decisions[b]):
                c, f = self._state(st, [b])
                ctx[b][n], canvas[b][n] = c[0], f[0]
        return list(zip(ctx, canvas, strict=True))

    def stepper(self, n: int = 0, prefixes: Sequence[TokenSequence] | None = None):
        """A stepper of ``n`` empty sequences of the language's shape, or going on from ``prefixes``
        (re-expressed with the fixed header; a prefix coded on another tree, with pixel replication
        or a region of interest, is refused: the model knows only the language's tree)."""
        if prefixes is not None:
            # replication and regions are checked before the prefix is re-expressed: a region's shift lifts
            # a prefix's top plane past the shape's, which with_top_plane refused first, advising on nmax
            for p in prefixes:
                if "rep" in p.params or "roi" in p.params:
                    self._other_tree("pixel replication" if "rep" in p.params else "a region of interest")
            fixed = [self.tok.with_top_plane(p) for p in prefixes]
            for p in fixed:
                if p.params.get("levels") != self.levels:
                    self._other_tree(f"{p.params.get('levels')} levels, not {self.levels}")
            return self.tok.stepper(fixed)
        return self.tok.stepper([self.shape] * n)

    @staticmethod
    def _other_tree(what: str) -> None:
        raise AdatokError(f"a prefix to complete must be coded on the language's own tree: this one has {what}; "
                          "encode the image with tok.encode([image], fixed_header=True)")

    def step_features(self, st) -> tuple[np.ndarray, np.ndarray]:
        """Position ints and floats of each row's next token from a stepper ``st`` (see
        :meth:`features`): what the model reads beside the id just written, at sampling time."""
        legal = st.legal()
        ints, floats = self.features(st.next_pos(), self.kinds_of(legal))
        return self._with_state(ints, floats, self._state(st) if self.reads_state else None)

    def decode(self, seqs: Sequence[TokenSequence]) -> list[np.ndarray]:
        """The images of sequences of the language (the tokenizer's decoding)."""
        return self.tok.decode(list(seqs))


class WordLanguage(WaveletLanguage):
    """Words of a wavelet word tokenizer (``wavelet-w8``, see ``docs/words.md``): the decisions of
    :class:`WaveletLanguage`, ``n`` to a token, with the same fixed header and position features.
    A word's features are those of its first decision (its ``pos`` row and kind: the word's own
    ``kind`` column), and the stepper's legal mask is over the word vocabulary (``3**n``)."""

    family = WordTokenizer

    @property
    def per_token(self) -> int:
        return self.tok.n

    def describe(self) -> dict:
        """See :meth:`WaveletLanguage.describe`."""
        return super().describe() | {"language": "words"}

    def _decisions(self, full: TokenSequence) -> np.ndarray:
        return np.asarray(self.tok.to_decisions(full).ids, np.int64)

    def rows(self, full: TokenSequence, n: int, state: tuple[np.ndarray, np.ndarray] | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Training rows of the first ``n`` words of ``full``: ids (n,), ints and floats (n + 1)."""
        ids = full.ids[:n]
        if n < len(full):
            pos, kinds = full.pos[: n + 1, :6], full.pos[: n + 1, 6]
        else:
            pos = np.concatenate([full.pos[:n, :6], np.zeros((1, 6), np.int32)])
            kinds = np.append(full.pos[:n, 6], KIND_END)
        ints, floats = self.features(pos, np.asarray(kinds, np.int64))
        return (ids, *self._with_state(ints, floats, state))

    def step_features(self, st) -> tuple[np.ndarray, np.ndarray]:
        """See :meth:`WaveletLanguage.step_features` (a word's: those of its first decision)."""
        pos = st.next_pos()
        ints, floats = self.features(pos[:, :6], np.where(pos[:, 6] < 0, KIND_END, pos[:, 6]).astype(np.int64))
        return self._with_state(ints, floats, self._state(st.decisions) if self.reads_state else None)


class SlotLanguage:
    """The slots of a learned tokenizer (every id legal; a sequence ends after K slots)."""

    position = "slot"
    float_fields = 0
    variable_length = True

    def __init__(self, tokenizer: str, target: Quality | None = None, version: str | None = None):
        self.tok = adatok.load(tokenizer)
        if not hasattr(self.tok, "expects") or not hasattr(self.tok, "tokens"):
            raise AdatokError(f"the slot language is written in a learned tokenizer's tokens; {tokenizer!r} is not one")
        if version is not None and self.tok.version != version:
            # (a checkpoint folder trained again: the same ids now decode to other images, and a resumed run
            # tokenized its corpus again with the new weights, silently)
            raise AdatokError(f"this generator writes the tokens of {tokenizer} version {version}, but that tokenizer "
                              f"is version {self.tok.version} now (trained again or replaced): its samples would be "
                              "other images; restore the tokenizer it was trained on, or train the generator again")
        # a folder by its absolute path, so that the generator's checkpoint finds it from any working folder
        self.name = str(Path(tokenizer).resolve()) if not registered(str(tokenizer)) and Path(tokenizer).is_dir() \
            else str(tokenizer)
        self.target = target
        self.vocab_size = self.tok.vocab_size
        self.shape = tuple(self.tok.expects)
        self.int_sizes = (self.tok.tokens + 1,)

    def describe(self) -> dict:
        """See :meth:`WaveletLanguage.describe`."""
        return {"language": "slot", "tokenizer": self.name, "version": self.tok.version, "shape": list(self.shape),
                "target": None if self.target is None else {"psnr": self.target.psnr, "ssim": self.target.ssim}}

    def encode(self, images: Sequence[np.ndarray]) -> list[tuple[TokenSequence, int]]:
        """Each image's full sequence (all K slots) and the length of its training prefix (the
        shortest reaching the target; all K without one)."""
        fulls = self.tok.encode(list(images))
        if self.target is None:
            return [(s, len(s)) for s in fulls]
        return [(f, len(s)) for f, s in zip(fulls, self.tok.encode(list(images), self.target), strict=True)]

    def features(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Position features of next tokens: the slot as the one int, no floats."""
        return np.asarray(slots, np.int16).reshape(-1, 1), np.zeros((len(slots), 0), np.float32)

    def rows(self, full: TokenSequence, n: int):
        """Training rows of a prefix of length ``n`` of ``full``: ids (n,), ints and floats (n + 1)."""
        return (full.ids[:n], *self.features(np.arange(n + 1)))

    def stepper(self, n: int = 0, prefixes: Sequence[TokenSequence] | None = None):
        """The learned tokenizer's stepper of ``n`` empty sequences, or going on from ``prefixes``."""
        return self.tok.stepper(list(prefixes) if prefixes is not None else [self.shape] * n)

    def step_features(self, st) -> tuple[np.ndarray, np.ndarray]:
        """Position features of each row's next token: its slot, the row's length so far."""
        return self.features(np.asarray(st.lengths))

    def decode(self, seqs: Sequence[TokenSequence]) -> list[np.ndarray]:
        """The images of sequences of the language (the tokenizer's decoding)."""
        return self.tok.decode(list(seqs))


class PixelStepper:
    """B pixel sequences grown one 8-bit pixel at a time, in raster order (the baseline's stepper)."""

    def __init__(self, shape: tuple[int, ...], n: int, prefixes: Sequence[np.ndarray] | None = None):
        self.shape = shape
        self.size = int(np.prod(shape))
        self.ids = np.zeros((n, self.size), np.int64)
        self.lengths = np.zeros(n, np.int64)
        for b, p in enumerate(prefixes or []):
            self.ids[b, : len(p)] = p
            self.lengths[b] = len(p)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def done(self) -> np.ndarray:
        """Which rows hold all their pixels."""
        return self.lengths >= self.size

    def legal(self) -> np.ndarray:
        """(B, 256) mask of the values each row may take next (all of them, none for a done row)."""
        return np.repeat(~self.done[:, None], 256, 1)

    def push(self, ids) -> None:
        """Append one value to each row (a negative id, or a done row: nothing)."""
        ids = np.asarray(ids, np.int64)
        go = (ids >= 0) & ~self.done
        if ((ids[go] > 255)).any():
            raise InvalidTokensError("pixel values are 0..255")
        rows = np.nonzero(go)[0]
        self.ids[rows, self.lengths[rows]] = ids[rows]
        self.lengths[rows] += 1

    def images(self) -> list[np.ndarray]:
        """The pixels written so far (the rest black)."""
        return [row.reshape(self.shape).astype(np.uint8) for row in self.ids]


class PixelLanguage:
    """The baseline: 8-bit pixels in raster order, all of them (784 for Fashion-MNIST)."""

    position = "slot"
    float_fields = 0
    variable_length = False  # all the pixels, always
    vocab_size = 256
    name = "pixels"
    target = None

    def __init__(self, shape: tuple[int, ...] = (28, 28, 1)):
        self.shape = tuple(shape)
        self.size = int(np.prod(shape))
        self.int_sizes = (self.size + 1,)

    def describe(self) -> dict:
        """See :meth:`WaveletLanguage.describe`."""
        return {"language": "pixels", "shape": list(self.shape)}

    def encode(self, images: Sequence[np.ndarray]) -> list[tuple[np.ndarray, int]]:
        """Each image's pixels in raster order, and its length (all of them)."""
        return [(np.asarray(img, np.int64).reshape(-1), self.size) for img in images]

    def features(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Position features of next tokens: the slot as the one int, no floats."""
        return np.asarray(slots, np.int16).reshape(-1, 1), np.zeros((len(slots), 0), np.float32)

    def rows(self, full: np.ndarray, n: int):
        """Training rows of the first ``n`` pixels of ``full``: ids (n,), ints and floats (n + 1)."""
        return (full[:n], *self.features(np.arange(n + 1)))

    def stepper(self, n: int = 0, prefixes=None) -> PixelStepper:
        """A :class:`PixelStepper` of ``n`` empty rows, or going on from ``prefixes``."""
        return PixelStepper(self.shape, n if prefixes is None else len(prefixes), prefixes)

    def step_features(self, st) -> tuple[np.ndarray, np.ndarray]:
        """Position features of each row's next pixel: its place in raster order."""
        return self.features(st.lengths)

    def decode(self, seqs) -> list[np.ndarray]:
        """The images of pixel sequences (all their pixels)."""
        return [np.asarray(s, np.uint8).reshape(self.shape) for s in seqs]


def language_from(config: dict):
    """The language a generator checkpoint's ``config["language"]`` describes
    (:class:`~adatok.AdatokError` for one that is malformed)."""
    try:
        return _language_from(config)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise AdatokError(f"the checkpoint's language is malformed ({type(exc).__name__}: {exc}): {config!r}") from None


def _language_from(config: dict):
    kind = config["language"]
    target = config.get("target")
    q = None if not target else Quality(psnr=target.get("psnr"), ssim=target.get("ssim"))
    if kind == "wavelet":
        return WaveletLanguage(config["tokenizer"], tuple(config["shape"]), q, config.get("context", False),
                               config.get("canvas", False))
    if kind == "words":
        return WordLanguage(config["tokenizer"], tuple(config["shape"]), q, config.get("context", False),
                            config.get("canvas", False))
    if kind == "slot":
        return SlotLanguage(config["tokenizer"], q, config.get("version"))  # (no version: kept before 2026-12-02)
    if kind == "pixels":
        return PixelLanguage(tuple(config["shape"]))
    raise ValueError(f"unknown language {kind!r}")


def rows_of(lang, pairs: Sequence[tuple]) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``lang.rows(full, n)`` of each ``(full, n)``, with the decoder's state (:meth:`WaveletLanguage.states`,
    replayed for all the pairs at once) where the language reads it."""
    states = lang.states(pairs) if getattr(lang, "reads_state", False) else None
    for k, (full, n) in enumerate(pairs):
        yield lang.rows(full, n) if states is None else lang.rows(full, n, states[k])


def build_corpus(lang, images: Sequence[np.ndarray], labels: np.ndarray, progress=None, chunk: int = 500) -> Corpus:
    """Encode ``images`` and gather every training row (``progress(done, total)`` after each chunk)."""
    def rows():
        for at in range(0, len(images), chunk):
            yield from rows_of(lang, lang.encode(images[at : at + chunk]))
            if progress is not None:
                progress(min(at + chunk, len(images)), len(images))

    return gather_corpus(rows(), labels, lang.vocab_size)


def gather_corpus(rows, labels: Sequence[int] | np.ndarray, vocab_size: int) -> Corpus:
    """A :class:`Corpus` of its sequences' ``(ids, position ints, position floats)`` rows, in order
    (from :meth:`rows` of a language), and their labels."""
    ids, ints, floats, starts = [], [], [], [0]
    for i, a, f in rows:
        ids.append(np.asarray(i))
        ints.append(a)
        floats.append(f)
        starts.append(starts[-1] + len(i))
    dtype = np.int16 if vocab_size < 2**15 else np.int32
    return Corpus(np.concatenate(ids).astype(dtype), np.array(starts, np.int64), np.concatenate(ints),
                  np.concatenate(floats), np.asarray(labels, np.int64))
