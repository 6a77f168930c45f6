"""The training-free wavelet tokenizers (numpy + numba; never imports torch)."""

from ..core.registry import load, register
from .tokenizer import WaveletTokenizer
from .words import WordTokenizer

register("wavelet", lambda: WaveletTokenizer("wavelet", lossless=False))
register("wavelet-lossless", lambda: WaveletTokenizer("wavelet-lossless", lossless=True))
# Words of 8 decisions (docs/words.md): the same decisions and bytes, sequences 8 times shorter
# (views of the decision tokenizers: not listed, so adatok demo does not measure them twice).
register("wavelet-w8", lambda: WordTokenizer(load("wavelet"), 8, "wavelet-w8"), listed=False)
register("wavelet-lossless-w8", lambda: WordTokenizer(load("wavelet-lossless"), 8, "wavelet-lossless-w8"),
         listed=False)

__all__ = ["WaveletTokenizer", "WordTokenizer"]
