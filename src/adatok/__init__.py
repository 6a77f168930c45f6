"""adatok: images as ordered, variable-length, prefix-decodable token sequences.

>>> import adatok
>>> tok = adatok.load("wavelet")
"""

from . import wavelet  # noqa: F401  (registers the wavelet tokenizers)
from . import neural  # noqa: F401  (registers learned checkpoints; torch only when one is loaded)
from .core import (AdatokError, Bpp, Budget, BudgetError, ContainerError, ImageFormatError, ImageReadError,
                   InvalidTokensError, Lossless, Quality, Stepper, TokenizerMismatchError, TokenSequence,
                   Tokenizer, Tokens, UnknownTokenizerError, load)
from .core.imageio import read_image, write_image

__version__ = "0.1.0"

__all__ = [
    "AdatokError", "Bpp", "Budget", "BudgetError", "ContainerError", "ImageFormatError", "ImageReadError",
    "InvalidTokensError", "Lossless", "Quality", "Stepper", "TokenSequence", "Tokenizer", "TokenizerMismatchError",
    "Tokens", "UnknownTokenizerError", "load", "read_image", "write_image", "__version__",
]
