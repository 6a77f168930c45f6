"""Budgets: how long a token sequence may be, chosen per image.

* :class:`Tokens` — at most ``k`` tokens (exactly ``min(k, full length)``);
* :class:`Bpp` — at most ``x`` bits per pixel of coded bytes, header included (or the token
  stream alone, ``header=False``);
* :class:`Quality` — the shortest prefix that reaches a PSNR or SSIM target, per image;
* :class:`Lossless` — the full sequence of a lossless tokenizer.
"""

from __future__ import annotations

import math
import numbers
from fractions import Fraction

from dataclasses import dataclass

import numpy as np

from .errors import BudgetError

#: Bytes no budget needs more of: a container's payload length is a u32, so every sequence adatok
#: can write fits in fewer. Larger byte budgets (``Bpp(1e10)`` on any image) mean "no limit".
MAX_BUDGET_BYTES = 2**32 - 1


def _real(value) -> float | None:
    """``value`` as a float when it is a real number of any type (Python or numpy, any width;
    not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return float(value)


def _written(value: float) -> str:
    """A budget's number as a user writes it: ``35`` for 35.0, ``0.9``, ``1e-05``; the shortest form
    that reads back as the same float (``f"{v:g}"`` alone would round 35.123456789)."""
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


@dataclass(frozen=True)
class Tokens:
    """At most ``k`` tokens: a sequence gets exactly ``min(k, full length)``.

    ``k`` is any whole number >= 0 of any integer type (Python, numpy of any width), however
    large; it is stored as a Python ``int``.
    """

    k: int

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, numbers.Integral) or self.k < 0:
            raise BudgetError(f"Tokens(k) needs a whole number k >= 0, got {self.k!r}")
        object.__setattr__(self, "k", int(self.k))  # numpy's uint64 and int64 would wrap in arithmetic

    def __repr__(self) -> str:  # as a user writes it, Tokens(32) (was Tokens(k=32))
        return f"Tokens({self.k})"


@dataclass(frozen=True)
class Bpp:
    """At most ``x`` bits per pixel (H * W) of coded bytes.

    ``header=True`` (the default) counts the whole ``.atk`` file: what a file on disk or a message
    on the wire costs. ``header=False`` counts the token stream alone (the container's payload):
    what a dataset that stores many token streams under one shared header pays per image, and the
    fair measure between tokenizers on small images, where the header would be most of the budget:
    on 28x28 gray images, 63-64 bytes for the learned tokenizer (61-62 for an empty sequence) and
    82-86 for the wavelet one (80-82 empty), a 2-D array's a byte less than a 28x28x1 image's
    (``adatok.core.sequence.header_size`` on the 10,000 Fashion-MNIST test images; see
    ``docs/learned-tokenizer.md``).
    """

    x: float
    header: bool = True

    def __post_init__(self) -> None:
        x = _real(self.x)
        if x is None or not math.isfinite(x) or x <= 0:
            kind = "" if x is not None else f" (a {type(self.x).__name__}, not a real number)"
            raise BudgetError(f"Bpp(x) needs a finite number x > 0, got {self.x!r}{kind}")
        object.__setattr__(self, "x", x)
        if not isinstance(self.header, bool | np.bool_):
            raise BudgetError(f"Bpp(header=...) is True or False, got {self.header!r}")
        object.__setattr__(self, "header", bool(self.header))  # (numpy's bool, from a comparison)

    def __repr__(self) -> str:  # as a user writes it, Bpp(0.5), Bpp(0.5, header=False) (was Bpp(x=0.5, header=True))
        return f"Bpp({_written(self.x)}{'' if self.header else ', header=False'})"

    def nbytes(self, shape) -> int:
        """The byte budget for an image of ``shape`` (H, W, ...): ``floor(x * H * W / 8)``, at most
        :data:`MAX_BUDGET_BYTES` (more than any sequence needs: the full sequence).

        Computed exactly from ``x``'s float value, a product within a float's rounding (2**-50 of
        it) under a whole number taken as that number: ``0.58`` is stored as 0.57999999999999996, so
        ``x * 100 * 100 / 8`` is a hair under 725, and ``Bpp(0.58)`` on a 100 x 100 image allowed
        724 bytes, not the 725 that 5,800 bits are; so did the rate an n-byte file is printed with,
        ``8 * n / (H * W)``, half the time."""
        total = Fraction(self.x) * Fraction(shape[0]) * Fraction(shape[1]) / 8
        if total >= MAX_BUDGET_BYTES:
            return MAX_BUDGET_BYTES
        whole = math.floor(total)
        return whole + 1 if (whole + 1 - total) <= total * Fraction(1, 2**50) else whole


def exact_bpp(nbytes: int, shape, header: bool = True) -> "Bpp":
    """The smallest ``Bpp(x, header)`` that allows ``nbytes`` bytes on an image of ``shape`` (H, W,
    ...): ``x = 8 * nbytes / (H * W)``, raised by the float steps its rounding needs (``x * H * W /
    8`` can come out a hair under ``nbytes``, and the budget's floor one byte short)."""
    x = max(8 * nbytes / (shape[0] * shape[1]), math.ulp(0.0))
    while Bpp(x, header).nbytes(shape) < nbytes:
        x = math.nextafter(x, math.inf)
    return Bpp(x, header)


def smallest_bpp(nbytes: int, shape) -> str:
    """The smallest ``x``, written with three significant digits, for which ``Bpp(x)`` allows
    ``nbytes`` bytes on an image of ``shape`` (H, W, ...): what an error message may tell a user to
    use (the nearest three-digit value can lie just under it, and be refused in turn)."""
    need = nbytes * 8 / (shape[0] * shape[1])
    step = 10.0 ** (math.floor(math.log10(need)) - 2)
    x = (math.ceil(need / step) - 1) * step  # (one step under: float rounding can put need a hair above)
    while Bpp(float(f"{x:.3g}")).nbytes(shape) < nbytes:  # the first three-digit value that allows nbytes
        x += step
    return f"{x:.3g}"


def too_small(budget: Bpp, total: int, shape, header: int, what: str = "the header alone") -> BudgetError:
    """The error of a ``budget`` whose ``total`` bytes on an image of ``shape`` (H, W, ...) cannot
    hold the ``header`` bytes every sequence needs (``what``: how to call them), with the smallest
    Bpp that can. One message for every tokenizer, the image's size in the H x W order of every
    other message (copies of it said W x H: "this 96x64 image" of a 64 x 96 photo)."""
    return BudgetError(f"Bpp({budget.x}) allows {total} bytes for this {shape[0]}x{shape[1]} image (H x W), less than "
                       f"{what}; use at least Bpp({smallest_bpp(header, shape)})")


@dataclass(frozen=True)
class Quality:
    """The shortest prefix whose decoded image reaches a target, found for each image separately.

    Give exactly one of ``psnr`` (dB, over all channels of the 8-bit image) or ``ssim`` (0..1).
    ``region`` is ``None`` (whole image) or ``"roi"`` (inside the region of interest).
    """

    psnr: float | None = None
    ssim: float | None = None
    region: str | None = None

    def __post_init__(self) -> None:
        if (self.psnr is None) == (self.ssim is None):
            raise BudgetError("Quality needs exactly one target: Quality(psnr=40) or Quality(ssim=0.95)")
        if self.psnr is not None:
            v = _real(self.psnr)
            if v is None or not math.isfinite(v) or v <= 0:
                raise BudgetError(f"Quality(psnr=...) needs a finite number of dB > 0, got {self.psnr!r}")
            object.__setattr__(self, "psnr", v)
        if self.ssim is not None:
            v = _real(self.ssim)
            if v is None or not 0 < v <= 1:
                raise BudgetError(f"Quality(ssim=...) needs a number in (0, 1], got {self.ssim!r}")
            object.__setattr__(self, "ssim", v)
        if self.region not in (None, "roi"):
            raise BudgetError(f"Quality(region=...) is None or 'roi', got {self.region!r}")

    def __repr__(self) -> str:
        """As a user writes it, without the fields left out: ``Quality(psnr=35)``, ``Quality(ssim=0.9,
        region='roi')``; what ``adatok eval`` titles its lengths table with and ``lengths.csv``'s
        ``target`` column holds (until 2026-12-03 ``Quality(psnr=35.0, ssim=None, region=None)``)."""
        goal = f"psnr={_written(self.psnr)}" if self.psnr is not None else f"ssim={_written(self.ssim)}"
        return f"Quality({goal}{'' if self.region is None else f', region={self.region!r}'})"


@dataclass(frozen=True)
class Lossless:
    """The full sequence of a lossless tokenizer: it reconstructs the image bit-exactly."""


Budget = Tokens | Bpp | Quality | Lossless


def check_budget(budget: object) -> None:
    """Raise :class:`BudgetError` unless ``budget`` is ``None`` or one of the budget types."""
    if budget is not None and not isinstance(budget, Tokens | Bpp | Quality | Lossless):
        raise BudgetError(
            f"budget must be Tokens(k), Bpp(x), Quality(psnr=..|ssim=..) or Lossless(), got {budget!r}"
        )
