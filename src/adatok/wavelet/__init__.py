"""The training-free wavelet tokenizers (numpy + numba; never imports torch)."""

from ..core.registry import register
from .tokenizer import WaveletTokenizer

register("wavelet", lambda: WaveletTokenizer("wavelet", lossless=False))
register("wavelet-lossless", lambda: WaveletTokenizer("wavelet-lossless", lossless=True))

__all__ = ["WaveletTokenizer"]
