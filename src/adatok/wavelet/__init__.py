"""The training-free wavelet tokenizers (numpy + numba; never imports torch)."""

from ..core.registry import load, register, register_pattern
from .tokenizer import WaveletTokenizer
from .words import WordTokenizer

register("wavelet", lambda: WaveletTokenizer("wavelet", lossless=False))
register("wavelet-lossless", lambda: WaveletTokenizer("wavelet-lossless", lossless=True))
# Words of 8 decisions (docs/words.md): the same decisions and bytes, sequences 8 times shorter
# (views of the decision tokenizers: not listed, so adatok demo does not measure them twice).
register("wavelet-w8", lambda: WordTokenizer(load("wavelet"), 8, "wavelet-w8"), listed=False)
register("wavelet-lossless-w8", lambda: WordTokenizer(load("wavelet-lossless"), 8, "wavelet-lossless-w8"),
         listed=False)
# Words of any other n (1 to 10, as WordTokenizer takes): made on demand by name, so that their files
# read back in any process and on the command line (-t wavelet-w4).
register_pattern(r"(wavelet|wavelet-lossless)-w([1-9]|10)", lambda m: WordTokenizer(load(m[1]), int(m[2])),
                 "wavelet-wN / wavelet-lossless-wN (N = 1 to 10)")

__all__ = ["WaveletTokenizer", "WordTokenizer"]
