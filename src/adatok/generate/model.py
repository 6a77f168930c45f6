"""The generator: a decoder-only transformer over token sequences, read top to bottom.

At step ``t`` the model reads the id just written (at ``t = 0`` a class token: one of the classes,
or "no class" for unconditional sampling and classifier-free guidance) plus **where the token it
is about to write will stand**, and predicts that token's id, or END. Where the next token stands
comes from the tokenizer's stepper, so the model always knows what kind of decision it makes and
about which place of the image:

* wavelet tokens: embeddings of the next decision's bit-plane, level, band, channel and kind
  (significance, D set, L set, refinement, or "the stream has ended"), plus Fourier features of
  the coefficient's place normalised to the image (``(y + 0.5) / band height``, the same for
  ``x``), so the same place lands on the same point at every level;
* learned tokens and pixels: the slot (0..K, K meaning "after the last");
* ``"index"`` (the ablation "ids only"): the step number alone, as in a plain GPT.

Options a wavelet language may add (``docs/generation.md``): more integer fields (the decoder's
context), floats after the position's read through a small MLP (``canvas``: the image the prefix
decodes to), and, for words, embeddings built from the words' digits as well (``digits``).

A reading head (mean of the hidden states over a prefix, then a linear layer) classifies an image
from any prefix of its tokens; it is trained on sequences given "no class", at random prefix
lengths, beside the generation loss.

Attention keeps a key/value cache, so sampling costs one step per token, not a pass over the
prefix. Style after nanoGPT: a config dataclass and this one file.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

#: How the next position is encoded (see the module docstring).
POSITION_KINDS = ("wavelet", "slot", "index")


@dataclass
class GPTConfig:
    """The generator's shape. ``vocab_size`` ids of the tokenizer, plus END (= ``vocab_size``) out,
    plus ``classes + 1`` class tokens in (the last is "no class")."""

    vocab_size: int
    classes: int = 10
    max_len: int = 1024  # longest sequence, END included
    d_model: int = 192
    n_layer: int = 6
    n_head: int = 6
    dropout: float = 0.0
    position: str = "wavelet"  # one of POSITION_KINDS
    #: sizes of the integer position fields: wavelet (planes, levels + 1, 4 bands, channels, 5 kinds);
    #: slot: (slots + 1,); index: (max_len,)
    int_sizes: tuple[int, ...] = field(default_factory=tuple)
    float_fields: int = 0  # wavelet: 2 (y, x in [0, 1])
    fourier: int = 16  # frequencies per float field
    #: floats after the position's: the decoder's image as it stands (wavelet languages with
    #: ``canvas=True``), read through a small MLP
    canvas: int = 0
    #: ``(n, base)``: each id is a word of ``n`` base-``base`` digits, most significant first (the
    #: ``wavelet-w8`` words: ``(8, 3)``), and its embedding is its own vector plus one vector per
    #: (digit place, digit value), so that words sharing decisions share part of their meaning
    digits: tuple[int, ...] = ()
    #: the output layer shares the id embeddings (plus an END vector): with a large vocabulary (the
    #: 6,561 words of wavelet-w8) this halves the parameters the vocabulary costs
    tie: bool = False
    #: the class token's condition is also added to every step's input (a table of its own, zero at
    #: the start), not only read at the first step through attention
    class_every: bool = False

    def __post_init__(self) -> None:
        self.int_sizes = tuple(int(s) for s in self.int_sizes)
        self.digits = tuple(int(s) for s in self.digits)
        if self.digits and (len(self.digits) != 2 or self.digits[1] ** self.digits[0] != self.vocab_size):
            raise ValueError(f"digits (n, base) must have base ** n == vocab_size, got {self.digits}")
        if self.position not in POSITION_KINDS:
            raise ValueError(f"position must be one of {POSITION_KINDS}, got {self.position!r}")
        if self.d_model % self.n_head:
            raise ValueError("d_model must be a multiple of n_head")

    @property
    def float_width(self) -> int:
        """Floats a step reads: the position's, then the canvas."""
        return self.float_fields + self.canvas

    @property
    def end(self) -> int:
        """The END id the model writes after the last token."""
        return self.vocab_size

    @property
    def null_class(self) -> int:
        """The class index meaning "no class"."""
        return self.classes

    def to_dict(self) -> dict:
        """The configuration as ``config.json`` keeps it."""
        return asdict(self)


class Positions(nn.Module):
    """Where the next token stands -> a vector: one embedding per integer field, summed, plus a
    linear map of sines and cosines of the float fields at ``fourier`` octaves."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(n, cfg.d_model) for n in cfg.int_sizes)
        self.fourier = cfg.fourier
        self.floats = nn.Linear(2 * cfg.fourier * cfg.float_fields, cfg.d_model) if cfg.float_fields else None
        freqs = math.pi * 2.0 ** torch.arange(cfg.fourier, dtype=torch.float32) / 2
        self.register_buffer("freqs", freqs, persistent=False)
        self.n_floats = cfg.float_fields
        self.canvas = nn.Sequential(nn.Linear(cfg.canvas, 2 * cfg.d_model), nn.GELU(),
                                    nn.Linear(2 * cfg.d_model, cfg.d_model)) if cfg.canvas else None

    def forward(self, ints: torch.Tensor, floats: torch.Tensor | None) -> torch.Tensor:
        """``ints`` (B, T, len(int_sizes)) long, ``floats`` (B, T, float_width) -> (B, T, d_model)."""
        out = sum(table(ints[..., i]) for i, table in enumerate(self.tables))
        if self.floats is not None:
            angles = floats[..., : self.n_floats, None] * self.freqs  # (B, T, F, fourier)
            out = out + self.floats(torch.cat([angles.sin(), angles.cos()], -1).flatten(-2))
        if self.canvas is not None:
            out = out + self.canvas(floats[..., self.n_floats :])
        return out


def _cached(cache: dict, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Append this step's keys and values (B, H, T, d) to ``cache`` and return all of them so far.
    The cache is a buffer that doubles when full, so a step writes only its own T rows (a
    concatenation would copy the whole cache every step: at 784 steps, 128 rows and 4 layers,
    400 MB a step)."""
    n = cache.get("n", 0)
    need = n + k.shape[2]
    if "k" not in cache or need > cache["k"].shape[2]:
        size = max(need, 2 * (cache["k"].shape[2] if "k" in cache else 0), 64)
        for name, new in (("k", k), ("v", v)):
            buf = new.new_empty((*new.shape[:2], size, new.shape[3]))
            if n:
                buf[:, :, :n] = cache[name][:, :, :n]
            cache[name] = buf
    cache["k"][:, :, n:need] = k
    cache["v"][:, :, n:need] = v
    cache["n"] = need
    return cache["k"][:, :, :need], cache["v"][:, :, :need]


class Attention(nn.Module):
    """Causal multi-head self-attention with an optional key/value cache."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, D // self.n_head).permute(2, 0, 3, 1, 4)
        if cache is not None:  # sampling: the keys and values of the steps before, then this one's
            k, v = _cached(cache, k, v)
        S = k.shape[2]  # keys: the cached steps, then these T
        mask = None
        if 1 < T < S:  # several steps after cached ones: step i sees the cache and steps <= i
            mask = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(S - T)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=T > 1 and T == S,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(B, T, D))


class Block(nn.Module):
    """Pre-norm transformer block: causal self-attention (with a key/value cache) and an MLP, each
    with a residual."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = Attention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(nn.Linear(cfg.d_model, 4 * cfg.d_model), nn.GELU(),
                                 nn.Linear(4 * cfg.d_model, cfg.d_model), nn.Dropout(cfg.dropout))

    def forward(self, x: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), cache)
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """Token ids (and a class token first) plus next positions in, next-token logits out."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.tokens = nn.Embedding(cfg.vocab_size + cfg.classes + 1, cfg.d_model)  # ids, then classes
        if cfg.digits:  # each id's digits: rows place * base + value of one table
            n, base = cfg.digits
            places = base ** torch.arange(n - 1, -1, -1)
            digit = (torch.arange(cfg.vocab_size)[:, None] // places) % base + base * torch.arange(n)
            self.register_buffer("digit_rows", digit, persistent=False)
            self.digit_table = nn.Embedding(n * base, cfg.d_model)
        self.positions = Positions(cfg)
        #: ``class_every``: each class's vector added at every step (zero at the start: a model that
        #: has it begins as one without)
        self.class_steps = nn.Embedding(cfg.classes + 1, cfg.d_model) if cfg.class_every else None
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        if cfg.tie:  # ids' logits from their input embeddings, END's from its own vector
            self.end_out = nn.Parameter(torch.zeros(1, cfg.d_model))
            self.head_bias = nn.Parameter(torch.zeros(cfg.vocab_size + 1))
        else:
            self.head = nn.Linear(cfg.d_model, cfg.vocab_size + 1)  # ids and END
        self.read = nn.Linear(cfg.d_model, cfg.classes)  # the reading head
        self.apply(self._init)
        for name, p in self.named_parameters():  # scaled residual projections (GPT-2)
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * cfg.n_layer))
        if self.class_steps is not None:
            nn.init.zeros_(self.class_steps.weight)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, 0.0, 0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def embeddings(self) -> torch.Tensor:
        """The input vectors of every id and class token: their own, plus their digits' (``digits``)."""
        if not self.cfg.digits:
            return self.tokens.weight
        words = self.tokens.weight[: self.cfg.vocab_size] + self.digit_table(self.digit_rows).sum(1)
        return torch.cat([words, self.tokens.weight[self.cfg.vocab_size :]])

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        """The input vectors of ``inputs`` (ids and class tokens), as :meth:`embeddings` has them,
        built for these ids only (not the whole table: a sampling step reads one id a row)."""
        x = self.tokens(inputs)
        if not self.cfg.digits:
            return x
        words = (inputs < self.cfg.vocab_size)[..., None]
        digits = self.digit_table(self.digit_rows[inputs.clamp(max=self.cfg.vocab_size - 1)]).sum(-2)
        return x + digits * words

    def class_token(self, labels: torch.Tensor) -> torch.Tensor:
        """Input ids of class tokens (``null_class`` for "no class")."""
        return labels + self.cfg.vocab_size

    def hidden(self, inputs: torch.Tensor, ints: torch.Tensor, floats: torch.Tensor | None,
               caches: list[dict] | None = None) -> torch.Tensor:
        """Final hidden states (B, T, d_model) of ``inputs`` (B, T) read with the next positions.
        With ``caches`` (sampling), the steps given follow those the caches hold. Each row's first
        input is its class token (in the first call with ``caches``: they keep the class for
        ``class_every``, under ``"class"``)."""
        x = self.embed(inputs) + self.positions(ints, floats)
        if self.class_steps is not None:
            x = x + self.class_steps(self._row_classes(inputs, caches))[:, None]
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            x = block(x, None if caches is None else caches[i])
        return self.ln_f(x)

    def _row_classes(self, inputs: torch.Tensor, caches: list[dict] | None) -> torch.Tensor:
        """Each row's class (0..classes, the last "no class"): its first input's, or what the caches kept."""
        if caches is not None and "class" in caches[0]:
            return caches[0]["class"]
        first = inputs[:, 0] - self.cfg.vocab_size
        if bool(((first < 0) | (first > self.cfg.classes)).any()):
            raise ValueError("class_every: a row's first input must be its class token")
        if caches is not None:
            caches[0]["class"] = first
        return first

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """Logits (..., vocab_size + 1) of ids and END from hidden states."""
        if not self.cfg.tie:
            return self.head(h)
        return h @ self.output_vectors().T + self.head_bias

    def output_vectors(self) -> torch.Tensor:
        """The tied output layer (vocab_size + 1, d_model): the ids' input vectors, then END's.
        Inside :meth:`fixed_weights` without autograd, built once and reused."""
        fixed = "_output_kept" in self.__dict__ and not torch.is_grad_enabled()
        if fixed and self.__dict__["_output_kept"] is not None:
            return self.__dict__["_output_kept"]
        out = torch.cat([self.embeddings()[: self.cfg.vocab_size], self.end_out])
        if fixed:
            self.__dict__["_output_kept"] = out
        return out

    @contextlib.contextmanager
    def fixed_weights(self) -> Iterator[GPT]:
        """A scope in which the weights do not change (sampling): the tied output layer is built at
        its first use and reused to the end of it. Building it is a pass over the whole vocabulary,
        which with digit embeddings made a sampling step half again as long
        (21.82 against 32.76 images/s, benchmarks/generate_speed.py, batch 16)."""
        outer = "_output_kept" in self.__dict__
        if not outer:
            self.__dict__["_output_kept"] = None
        try:
            yield self
        finally:
            if not outer:
                del self.__dict__["_output_kept"]

    def forward(self, inputs: torch.Tensor, ints: torch.Tensor, floats: torch.Tensor | None,
                caches: list[dict] | None = None) -> torch.Tensor:
        """Logits (B, T, vocab_size + 1) of the token at each step."""
        return self.logits(self.hidden(inputs, ints, floats, caches))

    def read_prefixes(self, h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Class logits from the mean hidden state of the first ``lengths`` steps (1..T) of each row."""
        steps = torch.arange(h.shape[1], device=h.device)[None, :, None]
        kept = (steps < lengths[:, None, None]).to(h.dtype)
        return self.read((h * kept).sum(1) / lengths[:, None].to(h.dtype))
