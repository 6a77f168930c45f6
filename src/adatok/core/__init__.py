"""The contract: token sequences, budgets, errors, image I/O and metrics (numpy only)."""

from .budget import Bpp, Budget, Lossless, Quality, Tokens
from .errors import (AdatokError, BudgetError, ContainerError, ImageFormatError, ImageReadError,
                     InvalidTokensError, TokenizerMismatchError, UnknownTokenizerError)
from .protocol import Stepper, Tokenizer
from .registry import load
from .sequence import TokenSequence

__all__ = [
    "AdatokError", "Bpp", "Budget", "BudgetError", "ContainerError", "ImageFormatError", "ImageReadError",
    "InvalidTokensError", "Lossless", "Quality", "Stepper", "TokenSequence", "Tokenizer",
    "TokenizerMismatchError", "Tokens", "UnknownTokenizerError", "load",
]
