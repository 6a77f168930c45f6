"""The learned 1-D tokenizer, read top to bottom: FSQ, a ViT encoder with K latent tokens, a ViT decoder.

* :class:`FSQ` -- finite scalar quantization: each of a few dimensions is bounded (tanh) and
  rounded to a fixed number of levels, with a straight-through gradient; a code is the mixed-radix
  number of the levels (``prod(levels)`` codes, no codebook, no auxiliary loss).
* :class:`Encoder` -- image patches plus K learned latent tokens through a transformer; only the
  latents come out, projected to the FSQ dimensions.
* :class:`Decoder` -- the first k quantized latents (the rest replaced by a learned mask token)
  plus one learned query per patch through a transformer; the queries become pixels.
* :class:`Autoencoder` -- both, with nested dropout in training: each image keeps a random prefix
  of its latents, so every prefix 0..K decodes and the early tokens carry the most.

With ``vq_first`` the first token is instead a vector-quantized code of the whole image: the index
of its nearest centroid in a k-means codebook of ``vocab_size`` whole training images (fit by the
trainer, :func:`fit_codebook`, stored with the weights). The FSQ tokens then code what the centroid
misses: the encoder sees the image and its centroid, the decoder is conditioned on the centroid and
adds its output to it. A k-means code spends its 11 bits on one of 1,920 arbitrary images, where
an FSQ code decoded by a smooth network acts like 4 continuous numbers: on Fashion-MNIST the first
token goes from 15.6 dB (FSQ) to 17.8 dB (the shipped checkpoints, 10,000 test images).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


@dataclass
class ModelConfig:
    """Shape of the model; stored in a checkpoint's ``config.json`` under ``"model"``."""

    image_size: int = 28          # square images, H = W
    channels: int = 1
    patch: int = 7                # image_size must be a multiple of it
    tokens: int = 32              # K latent tokens
    dim: int = 128
    enc_depth: int = 4
    dec_depth: int = 4
    heads: int = 4
    mlp_ratio: float = 3.0
    levels: list[int] = field(default_factory=lambda: [8, 8, 6, 5])  # FSQ levels: 1920 codes
    linear_skip: bool = False     # a linear path image -> latents and latents -> image beside the transformers
    vq_first: bool = False        # the first token is a k-means code of the whole image, the rest FSQ

    def __post_init__(self) -> None:
        for key in ("image_size", "channels", "patch", "tokens", "dim", "enc_depth", "dec_depth", "heads"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key.endswith("depth") else 1):
                raise ValueError(f"{key} must be a whole number >= {0 if key.endswith('depth') else 1}, got {value!r}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if self.image_size % self.patch:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch {self.patch}")
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not a multiple of heads {self.heads}")
        if self.tokens < (2 if self.vq_first else 1):
            why = " with vq_first (one k-means token, then FSQ tokens)" if self.vq_first else ""
            raise ValueError(f"tokens {self.tokens} is too few{why}")
        if not isinstance(self.levels, list | tuple) or not self.levels or not all(
                not isinstance(v, bool) and isinstance(v, int | np.integer) and v >= 2 for v in self.levels):
            raise ValueError(f"levels must be a list of whole numbers >= 2 (an FSQ code's levels), got {self.levels!r}")
        self.levels = [int(v) for v in self.levels]
        if math.prod(self.levels) > 2**31 - 1:  # (token ids are int32: a larger code wrapped to negative ids)
            raise ValueError(f"levels {self.levels} give {math.prod(self.levels):,} codes, more than int32 token ids "
                             "hold (2**31 - 1)")
        ratio = self.mlp_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not math.isfinite(ratio) \
                or int(self.dim * ratio) < 1:
            raise ValueError(f"mlp_ratio must be a finite number > 0 (dim x mlp_ratio >= 1), got {ratio!r}")
        for key in ("linear_skip", "vq_first"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"{key} must be true or false, got {getattr(self, key)!r}")

    @property
    def fsq_tokens(self) -> int:
        """How many of the K tokens are FSQ latents (all but the first with ``vq_first``)."""
        return self.tokens - int(self.vq_first)

    @property
    def pixels(self) -> int:
        return self.channels * self.image_size**2

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch) ** 2

    @property
    def vocab_size(self) -> int:
        return math.prod(self.levels)

    def to_dict(self) -> dict:
        """The configuration as ``config.json`` keeps it."""
        return asdict(self)


def exists(x) -> bool:
    """Whether ``x`` is not None."""
    return x is not None


# --- finite scalar quantization ------------------------------------------------------------------


class FSQ(nn.Module):
    """Finite scalar quantization over ``len(levels)`` dimensions.

    ``forward(z)`` takes unbounded values ``(..., D)`` and returns ``(quantized, codes)``: the
    quantized values, each in [-1, 1] on its grid of ``levels[d]`` points (straight-through
    gradient), and the integer code in ``0 .. prod(levels) - 1``.
    """

    def __init__(self, levels: list[int], eps: float = 1e-3):
        super().__init__()
        lv = torch.tensor(levels, dtype=torch.int64)
        self.register_buffer("levels", lv, persistent=False)
        basis = torch.cumprod(torch.tensor([1] + list(levels[:-1]), dtype=torch.int64), 0)
        self.register_buffer("basis", basis, persistent=False)
        self.eps = eps
        self.codebook_size = math.prod(levels)

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        """Squash ``z`` so that rounding gives exactly ``levels[d]`` values per dimension."""
        lv = self.levels.to(z.dtype)
        half_l = (lv - 1) * (1 + self.eps) / 2
        offset = torch.where(self.levels % 2 == 0, 0.5, 0.0).to(z.dtype)
        shift = torch.atanh(offset / half_l)
        return torch.tanh(z + shift) * half_l - offset

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = self.bound(z)
        q = b + (torch.round(b) - b).detach()  # straight-through
        half_w = (self.levels // 2).to(z.dtype)
        codes = self.to_codes(q)
        return q / half_w, codes

    def to_codes(self, q_int: torch.Tensor) -> torch.Tensor:
        """Rounded, bounded values (integers centred on 0) -> codes."""
        half_w = self.levels // 2
        digits = torch.round(q_int).to(torch.int64) + half_w
        return (digits * self.basis).sum(-1)

    def from_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``(...)`` -> quantized values ``(..., D)`` in [-1, 1]."""
        digits = (codes.to(torch.int64)[..., None] // self.basis) % self.levels
        half_w = self.levels // 2
        return ((digits - half_w).to(torch.float32)) / half_w.to(torch.float32)


# --- transformer -----------------------------------------------------------------------------------


class Block(nn.Module):
    """Pre-norm transformer block: self-attention and an MLP, each with a residual."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(self.norm1(x)), "b n (t h d) -> t b h n d", t=3, h=self.heads)
        a = F.scaled_dot_product_attention(q, k, v)
        x = x + self.proj(rearrange(a, "b h n d -> b n (h d)"))
        return x + self.mlp(self.norm2(x))


def to_patches(x: torch.Tensor, p: int) -> torch.Tensor:
    """Images (B, C, H, W) -> (B, patches, p * p * C), patches in raster order."""
    return rearrange(x, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=p, p2=p)


def _init(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class Encoder(nn.Module):
    """Patches + K latent tokens -> transformer -> K vectors of ``len(levels)`` values.

    With ``linear_skip``, a linear map of the whole image is added to those vectors: the encoder
    half of a linear autoencoder, which nested dropout orders like PCA (Rippel et al., 2014), so
    the transformers only have to learn what a linear code misses. It trains far faster on a CPU.
    With ``vq_first`` the patches carry the image and its centroid side by side, and the linear
    path reads the residual (image minus centroid).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        pdim = cfg.patch * cfg.patch * cfg.channels * (2 if cfg.vq_first else 1)
        self.patch_embed = nn.Linear(pdim, cfg.dim)
        self.patch_pos = nn.Parameter(torch.randn(1, cfg.num_patches, cfg.dim) * 0.02)
        self.latents = nn.Parameter(torch.randn(1, cfg.fsq_tokens, cfg.dim) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg.dim, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.enc_depth))
        self.norm = nn.LayerNorm(cfg.dim)
        self.out = nn.Linear(cfg.dim, len(cfg.levels))
        self.skip = nn.Linear(cfg.pixels, cfg.fsq_tokens * len(cfg.levels)) if cfg.linear_skip else None

    def forward(self, x: torch.Tensor, centre: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: images (B, C, H, W); ``centre``: their centroids with ``vq_first`` (else None)."""
        p = self.cfg.patch
        inp = x if centre is None else torch.cat([x, centre], 1)
        patches = to_patches(inp, p)
        h = torch.cat([self.patch_embed(patches) + self.patch_pos, self.latents.expand(x.shape[0], -1, -1)], 1)
        for blk in self.blocks:
            h = blk(h)
        z = self.out(self.norm(h[:, self.cfg.num_patches :]))
        if self.skip is not None:
            z = z + self.skip((x if centre is None else x - centre).flatten(1)).view_as(z)
        return z


class Decoder(nn.Module):
    """The first k quantized latents (the rest: a mask token) + patch queries -> pixels in [-1, 1].

    With ``linear_skip``, a linear map of the kept latents (zeros in place of the others) is added
    to the pixels: the decoder half of the linear autoencoder (see :class:`Encoder`). With
    ``vq_first`` each patch query also carries its patch of the centroid, and the centroid is added
    to the output (the transformers and the linear path code the residual).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        pdim = cfg.patch * cfg.patch * cfg.channels
        self.latent_in = nn.Linear(len(cfg.levels), cfg.dim)
        self.latent_pos = nn.Parameter(torch.randn(1, cfg.fsq_tokens, cfg.dim) * 0.02)
        self.mask_token = nn.Parameter(torch.randn(1, 1, cfg.dim) * 0.02)
        self.queries = nn.Parameter(torch.randn(1, cfg.num_patches, cfg.dim) * 0.02)
        self.centre_in = nn.Linear(pdim, cfg.dim) if cfg.vq_first else None
        self.blocks = nn.ModuleList(Block(cfg.dim, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.dec_depth))
        self.norm = nn.LayerNorm(cfg.dim)
        self.out = nn.Linear(cfg.dim, pdim)
        self.skip = nn.Linear(cfg.fsq_tokens * len(cfg.levels), cfg.pixels) if cfg.linear_skip else None

    def forward(self, q: torch.Tensor, keep: torch.Tensor, centre: torch.Tensor | None = None) -> torch.Tensor:
        """``q``: (B, K', D) quantized FSQ latents; ``keep``: (B,) how many of them each image keeps;
        ``centre``: (B, C, H, W) the images' centroids with ``vq_first`` (else None)."""
        cfg = self.cfg
        b = q.shape[0]
        p = cfg.patch
        slot = torch.arange(cfg.fsq_tokens, device=q.device)
        kept = (slot[None, :] < keep[:, None])[..., None]
        lat = torch.where(kept, self.latent_in(q), self.mask_token) + self.latent_pos
        queries = self.queries.expand(b, -1, -1)
        if centre is not None:
            queries = queries + self.centre_in(to_patches(centre, p))
        h = torch.cat([lat, queries], 1)
        for blk in self.blocks:
            h = blk(h)
        pix = self.out(self.norm(h[:, cfg.fsq_tokens :]))
        g = cfg.image_size // p
        out = rearrange(pix, "b (h w) (p1 p2 c) -> b c (h p1) (w p2)", h=g, w=g, p1=p, p2=p)
        if self.skip is not None:
            out = out + self.skip((q * kept).flatten(1)).view_as(out)
        return out if centre is None else out + centre


class Autoencoder(nn.Module):
    """Encoder, FSQ and decoder. Images in and out are float tensors (B, C, H, W) in [-1, 1]."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.fsq = FSQ(cfg.levels)
        self.decoder = Decoder(cfg)
        if cfg.vq_first:  # the k-means codebook of the first token, in [-1, 1]; half precision halves the file
            self.register_buffer("centroids", torch.zeros(cfg.vocab_size, cfg.pixels, dtype=torch.float16))
        self.apply(_init)

    def set_codebook(self, centroids: torch.Tensor) -> None:
        """Install the first token's codebook ``(vocab_size, C * H * W)`` (see :func:`fit_codebook`)."""
        self.centroids.copy_(centroids.reshape(self.centroids.shape))

    def nearest(self, x: torch.Tensor) -> torch.Tensor:
        """With ``vq_first``: each image's nearest centroid (squared error), ``(B,)``."""
        c = self.centroids.float()
        flat = x.flatten(1)
        return ((c * c).sum(1)[None, :] - 2 * flat @ c.T).argmin(1)

    def _centres(self, ids: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Centroid images of ``ids``; an image that keeps no token gets the mean centroid."""
        c = self.centroids.float()
        centre = torch.where((keep > 0)[:, None], c[ids.clamp(0, len(c) - 1)], c.mean(0, keepdim=True))
        return centre.view(len(ids), self.cfg.channels, self.cfg.image_size, self.cfg.image_size)

    def _fsq_keep(self, keep: torch.Tensor) -> torch.Tensor:
        return (keep - int(self.cfg.vq_first)).clamp_min(0)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images -> (quantized FSQ latents (B, K', D), codes (B, K)); with ``vq_first`` the first
        code is the centroid index and K' = K - 1."""
        if not self.cfg.vq_first:
            return self.fsq(self.encoder(x))
        ids = self.nearest(x)
        q, codes = self.fsq(self.encoder(x, self._centres(ids, torch.ones_like(ids))))
        return q, torch.cat([ids[:, None], codes], 1)

    def decode_codes(self, codes: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Codes (B, K) (entries past ``keep`` are ignored) -> images (B, C, H, W) in [-1, 1]."""
        codes = codes.clamp(0, self.fsq.codebook_size - 1)
        if not self.cfg.vq_first:
            return self.decoder(self.fsq.from_codes(codes), keep)
        return self.decoder(self.fsq.from_codes(codes[:, 1:]), self._fsq_keep(keep), self._centres(codes[:, 0], keep))

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        if keep is None:
            keep = torch.full((x.shape[0],), self.cfg.tokens, device=x.device)
        q, codes = self.encode(x)
        centre = self._centres(codes[:, 0], keep) if self.cfg.vq_first else None
        return self.decoder(q, self._fsq_keep(keep), centre)


class CodeFeatures(nn.Module):
    """Codes ``(B, K)`` -> one flat vector per image, for small heads that read tokens (the prefix
    classifier, the halting head): each FSQ token's values in [-1, 1] and, with ``vq_first``, a
    learned linear projection of the first token's centroid image (the codebook is copied from
    ``model`` and stays fixed: ids whose centroids look alike get alike features, which a learned
    embedding per id would not; 88.8% against 86.6% at k = 32 for the prefix classifier).
    ``kept`` ``(B, K)`` (0/1) zeroes dropped tokens."""

    def __init__(self, model: Autoencoder, width: int = 128):
        super().__init__()
        cfg = model.cfg
        self.fsq = FSQ(cfg.levels)
        self.vq_first = cfg.vq_first
        if cfg.vq_first:
            self.register_buffer("centroids", model.centroids.detach().float().clone(), persistent=False)
            self.project = nn.Linear(cfg.pixels, width)
        self.width = cfg.fsq_tokens * len(cfg.levels) + (width if cfg.vq_first else 0)

    def forward(self, codes: torch.Tensor, kept: torch.Tensor | None = None) -> torch.Tensor:
        if kept is None:
            kept = torch.ones(codes.shape, dtype=torch.float32)
        if not self.vq_first:
            return (self.fsq.from_codes(codes) * kept[..., None]).flatten(1)
        first = self.project(self.centroids[codes[:, 0].clamp(0, len(self.centroids) - 1)]) * kept[:, :1]
        return torch.cat([first, (self.fsq.from_codes(codes[:, 1:]) * kept[:, 1:, None]).flatten(1)], 1)


def train_head(head: nn.Module, n: int, batch_loss, steps: int, batch: int, lr: float, weight_decay: float,
               generator: torch.Generator) -> nn.Module:
    """Train a small head that reads codes (the prefix classifier, the halting head): AdamW, 50
    warm-up steps, cosine decay; each step draws ``batch`` indices of the ``n`` examples from
    ``generator`` and minimises ``batch_loss(indices)``. Returns the head in eval mode."""
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / 50) * 0.5 * (1 + np.cos(np.pi * step / steps))
        loss = batch_loss(torch.randint(0, n, (batch,), generator=generator))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return head.eval()


def fit_codebook(images: torch.Tensor, size: int, seed: int = 0, quiet: bool = True,
                 threads: int | None = None) -> torch.Tensor:
    """A k-means codebook of ``size`` whole images (flattened; mini-batch k-means, scikit-learn) for
    the first token with ``vq_first``: ``(size, C * H * W)``. With fewer images than ``size``, the
    images themselves, repeated to fill it (a repeated row is never the nearest: ties go to the first).
    ``threads``: the most threads the fit uses (scikit-learn's OpenMP loops and the BLAS under them,
    set through threadpoolctl: they do not follow ``torch.set_num_threads``, and took every core);
    ``None``: the libraries' own defaults. The codebook is the same for any number of threads."""
    flat = images.flatten(1).numpy().astype(np.float32)
    n = len(flat)
    if n <= size:
        return torch.from_numpy(flat[np.arange(size) % n])
    from sklearn.cluster import MiniBatchKMeans
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):  # (None: no limit)
        km = MiniBatchKMeans(n_clusters=size, random_state=seed, batch_size=4096, n_init=1, max_iter=30,
                             verbose=0).fit(flat)
    return torch.from_numpy(km.cluster_centers_.astype(np.float32))


def sample_keep(batch: int, tokens: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Nested dropout: how many latents each image keeps in a training step, uniform on 0..K."""
    return torch.randint(0, tokens + 1, (batch,), generator=generator)


def count_params(model: nn.Module) -> int:
    """Number of parameters (of any model: the tokenizers' and the generators')."""
    return sum(p.numel() for p in model.parameters())
