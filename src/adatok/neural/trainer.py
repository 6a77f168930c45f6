"""Training the learned tokenizer: ``adatok train`` and :func:`train`.

One loop, readable top to bottom: random batches from a fixed-size image set, nested dropout (each
image keeps a random prefix of its K latents), mean squared error in pixels of the clamped output
plus a small SSIM term, AdamW with warm-up and cosine decay. With ``vq_first`` the first token's
k-means codebook is fit first (:func:`~adatok.neural.model.fit_codebook`). Periodic evaluation
reports PSNR at k = 1, 2, 4, ... K on held-out images.

A checkpoint is a folder: ``config.json`` (family, name, model shape, training settings, step,
last evaluation), ``model.safetensors`` (the weights) and ``train_state.safetensors`` (optimizer
moments and random state, for ``resume``); never pickles. Files are written to a temporary name
and renamed, so a checkpoint is never half-written.

Data-parallel: run the same command under ``torchrun --nproc_per_node N``; each process takes
its share of every batch and gradients are averaged (gloo on CPUs, NCCL on GPUs).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


from ..core.checks import JSON_ERRORS, is_finite_number, is_whole
from ..core.errors import AdatokError
from .folder import (CHECKPOINT_FILES, allocated, check_fresh_start, check_overrides, held_interrupts, hold_run_folder,
                     load_weights, read_weights, restore_training, unseeded, write_folder)
from .model import Autoencoder, ModelConfig, count_params, fit_codebook, sample_keep

FAMILY = "neural"
LOSSES = ("mse", "log-mse")  # what TrainConfig.loss may be (see _loss)
FORMAT = 1


@dataclass
class TrainConfig:
    """Training settings; stored in ``config.json`` under ``"train"``."""

    data: str = "fashion-mnist"
    crop: int | None = None  # a folder of images of any size: random crops of this side (see Crops)
    steps: int = 9000
    batch: int = 64
    lr: float = 2e-3
    warmup: int = 100
    weight_decay: float = 0.05
    seed: int = 0
    eval_every: int = 200
    eval_images: int = 500
    threads: int = 1
    loss: str = "mse"  # or "log-mse": the mean over images of log(MSE), i.e. minus the mean PSNR
    ssim_weight: float = 0.1  # plus this times (1 - SSIM) (see ssim_torch)

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise AdatokError(f"unknown loss {self.loss!r}: use {' or '.join(LOSSES)}")
        if not self.ssim_weight >= 0:
            raise AdatokError(f"the SSIM weight must be >= 0, got {self.ssim_weight}")
        if not (is_finite_number(self.lr) and self.lr > 0):
            raise AdatokError(f"the learning rate must be a finite number > 0, got {self.lr!r}")
        if not (is_finite_number(self.weight_decay) and self.weight_decay >= 0):
            raise AdatokError(f"the weight decay must be a finite number >= 0, got {self.weight_decay!r}")
        # (eval_every 0 was a division by zero after the first step, steps 0 a run that wrote nothing,
        # batch 0 "training diverged", batch 2.5 a raw TypeError)
        for what, v, low in (("steps", self.steps, 1), ("batch", self.batch, 1), ("warmup", self.warmup, 0),
                             ("eval_every", self.eval_every, 1), ("eval_images", self.eval_images, 1),
                             ("threads", self.threads, 1), ("crop", self.crop, 1)):
            if v is None and what == "crop":
                continue
            if not (is_whole(v) and v >= low):
                raise AdatokError(f"{what} must be a whole number >= {low}, got {v!r}")


#: What ``config.json`` says a run's data was when its images were given to :func:`train` as arrays.
GIVEN_IMAGES = "<images given to train()>"

#: What a resumed run may change (``train(..., resume=True, overrides={"steps": 12000})``); the
#: rest is the checkpoint's.
RESUMABLE = ("steps", "eval_every", "threads")


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, C) uint8 -> (N, C, H, W) float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) float in [-1, 1] -> (N, H, W, C) uint8."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


class Crops:
    """Training images of any size, served as random ``size x size`` crops with random horizontal
    flips (a folder of your own photos). Images smaller than the crop are left out and counted
    (``skipped``); gray images are repeated to RGB when any image is in colour. Indexing with a
    tensor of image indices gives a batch ``(B, C, size, size)`` in [-1, 1], drawn with the
    generator given to :meth:`using` (the trainer's, so a resumed run draws the same crops)."""

    def __init__(self, images: list[np.ndarray], size: int, skipped: int = 0):
        self.size = size
        self.skipped = skipped
        self.channels = 3 if any(im.shape[2] == 3 for im in images) else 1
        self.images = [np.repeat(im, 3, 2) if im.shape[2] < self.channels else im for im in images]
        self.generator: torch.Generator | None = None

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.images), self.size, self.size, self.channels)

    def using(self, generator: torch.Generator) -> Crops:
        """These crops, drawn with ``generator`` (the run's seeded one)."""
        self.generator = generator
        return self

    def __getitem__(self, idx: torch.Tensor) -> torch.Tensor:
        g, s = self.generator, self.size
        out = []
        for i in idx.tolist():
            im = self.images[i]
            y = int(torch.randint(0, im.shape[0] - s + 1, (1,), generator=g))
            x = int(torch.randint(0, im.shape[1] - s + 1, (1,), generator=g))
            crop = im[y : y + s, x : x + s]
            if bool(torch.rand(1, generator=g) < 0.5):
                crop = crop[:, ::-1]
            out.append(crop)
        return _to_tensor(np.stack(out))

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` crops (for the first token's k-means codebook)."""
        self.generator = generator
        return self[torch.randint(0, len(self), (n,), generator=generator)]

    def centre(self) -> np.ndarray:
        """The centre crop of every image, (N, size, size, C) uint8 (the held-out evaluation)."""
        s = self.size
        return np.stack([im[(im.shape[0] - s) // 2 : (im.shape[0] - s) // 2 + s,
                            (im.shape[1] - s) // 2 : (im.shape[1] - s) // 2 + s] for im in self.images])


def load_images(data: str, split: str | None = "train", crop: int | None = None,
                skipped: list | None = None) -> np.ndarray | Crops:
    """The training (or evaluation) images of ``data``.

    ``data`` is ``"fashion-mnist"`` (split ``"train"`` or ``"test"``: one (N, 28, 28, 1) uint8 array),
    a folder of images, searched recursively, or a folder of token shards (``adatok
    tokenize-dataset``; training sees their decodings: the images themselves for lossless shards).
    Every 20th of a folder's readable images (sorted; :func:`adatok.datasets.held_out`) is held out
    for evaluation (``split="test"``; token shards are split as :func:`adatok.datasets.read_tokens`
    splits them, Fashion-MNIST's keeping its splits). Without ``crop``, a folder's images must all have one
    square size (one array, as Fashion-MNIST). With ``crop``, they may have any size: training
    gets :class:`Crops` (random crops of that side and flips; smaller images left out and
    counted), evaluation the centre crops (an array). ``skipped``: a list that gets ``(id, reason)``
    of each file of a folder of images that is not a readable image (left out: :func:`report_left_out`).
    """
    from .. import datasets

    if data != "fashion-mnist":
        datasets.check_not_in_shards(data)
    if data == "fashion-mnist":
        images = datasets.load("fashion-mnist", split=split).images
    elif datasets.is_token_shards(data):  # token shards (adatok tokenize-dataset): their decodings
        import adatok

        seqs = [r.seq for r in datasets.split_rows(data, split or "train")]
        images = adatok.load(seqs[0].tokenizer).decode(seqs)  # (one run, one tokenizer)
        if any(shape[2] == 3 for shape in datasets.token_column(data, "shape")):  # as a folder: both parts alike
            images = [np.repeat(im, 3, 2) if im.shape[2] == 1 else im for im in images]
    else:
        # The whole folder is read and sorted out before the held-out images are taken, so that both parts
        # are alike: images too small for the crop left out of both, and gray images repeated to RGB
        # in both when any image of the folder is in colour.
        ds = datasets.load(data)
        images = ds.images
        if skipped is not None:
            skipped.extend(ds.skipped)
        if not images:  # (with why: "notes.txt" said only "no readable images under notes.txt")
            why = datasets.left_out_line(ds.skipped, data, shown=1)
            raise AdatokError(f"no readable images under {data}" + (f" ({why})" if why else ""))
        too_small = 0
        if crop is not None:
            big = [im for im in images if min(im.shape[:2]) >= crop]
            if not big:
                raise AdatokError(f"{data}: none of its {len(images)} images is at least {crop}x{crop}; "
                                  "give a smaller --image-size")
            too_small, images = len(images) - len(big), big
        if any(im.shape[2] == 3 for im in images):
            images = [np.repeat(im, 3, 2) if im.shape[2] == 1 else im for im in images]
        if len(images) < 2:
            raise AdatokError(f"{data} has one readable image: training and its held-out evaluation need at least 2")
        test = datasets.held_out(len(images))  # (every 20th: the last 5% of a folder of classes were its last class)
        images = [im for im, t in zip(images, test, strict=True) if t == (split == "test")]
        if crop is not None:
            crops = Crops(images, crop, skipped=too_small)
            return crops if split != "test" else crops.centre()
    if crop is not None:  # Fashion-MNIST, or token shards' decodings, cropped
        big = [im for im in images if min(im.shape[:2]) >= crop]
        if not big:
            raise AdatokError(f"{data}: none of its {len(images)} {split or ''} images is at least {crop}x{crop}; "
                              "give a smaller --image-size")
        crops = Crops(big, crop, skipped=len(images) - len(big))
        return crops if split != "test" else crops.centre()
    shapes = {img.shape for img in images}
    if len(shapes) != 1:
        raise AdatokError(f"{data}: the images have {len(shapes)} different shapes ({sorted(shapes)[:3]} ...); "
                          "give --image-size S to train on random S x S crops of them")
    (shape,) = shapes
    if shape[0] != shape[1]:
        raise AdatokError(f"{data}: the images are {shape[0]}x{shape[1]} (H x W); give --image-size S to train on square "
                          "crops of them")
    return np.stack(images)


def report_left_out(skipped: list, data: str, out: str | Path | None = None) -> None:
    """Tell (on stderr, even with ``quiet``: a run that trained on fewer images than the folder
    holds said nothing of it) the files of the data folder that were left out as unreadable; the
    run's own checkpoint files, when its ``out`` lies inside the folder, are not data."""
    from ..datasets import RUN_FILES, left_out_line

    if out is not None:
        own = Path(os.path.realpath(out))
        skipped = [(name, why) for name, why in skipped
                   if not (Path(name).name in RUN_FILES and Path(os.path.realpath(Path(data) / name)).parent == own)]
    line = left_out_line(skipped, data)
    if line:
        import sys

        print(f"warning: {line}", file=sys.stderr, flush=True)


def save_checkpoint(out: Path, model: Autoencoder, name: str, train_cfg: TrainConfig | None = None,
                    step: int = 0, metrics: dict | None = None, optimizer: torch.optim.Optimizer | None = None,
                    extra: dict | None = None, generator: torch.Generator | None = None) -> None:
    """Write ``config.json`` and ``model.safetensors`` (and ``train_state.safetensors`` when an
    optimizer is given) into ``out``."""
    config = {"family": FAMILY, "format": FORMAT, "name": name, "model": model.cfg.to_dict(),
              "train": asdict(train_cfg) if train_cfg else None, "step": step, "metrics": metrics or {},
              **(extra or {})}
    write_folder(Path(out), model, config, optimizer, generator)


def read_config(folder: Path) -> dict:
    """A checkpoint's ``config.json``, checked (AdatokError naming what is wrong)."""
    folder = Path(folder)
    try:
        config = json.loads((folder / "config.json").read_text())
        if config.get("family") != FAMILY:
            raise ValueError(f"family {config.get('family')!r} is not {FAMILY!r}")
        if config.get("format") != FORMAT:
            raise ValueError(f"format {config.get('format')!r} is not {FORMAT!r} (made by another adatok?)")
        ModelConfig(**config["model"])
        if not isinstance(config.get("name"), str) or not config["name"]:
            raise ValueError(f"its name must be a non-empty string, got {config.get('name')!r}")
        if not isinstance(config.get("train") or {}, dict):
            raise ValueError(f"its 'train' must be an object, got {type(config['train']).__name__}")
    except (OSError, *JSON_ERRORS, KeyError, TypeError, AttributeError) as exc:
        raise AdatokError(f"{folder} is not a learned-tokenizer checkpoint ({exc})") from None
    if not (folder / "model.safetensors").is_file():
        raise AdatokError(f"{folder} has no model.safetensors: the checkpoint is incomplete")
    return config


def load_model(folder: Path, digest: bool = False) -> tuple:
    """The model of a checkpoint folder (eval mode) and its config (and with ``digest`` the
    :func:`~adatok.neural.folder.weights_digest` of the weights loaded, from the same read)."""
    config = read_config(folder)
    tensors, weights = read_weights(folder)
    model = load_weights(folder, unseeded(lambda: Autoencoder(ModelConfig(**config["model"]))), tensors)
    return (model, config, weights) if digest else (model, config)


#: Below this share of the codes a slot could use on the evaluated images (``min(vocabulary,
#: images)``), a slot counts as collapsed and training warns.
USAGE_WARNING = 0.10


def code_usage(codes: np.ndarray, vocab_size: int) -> dict:
    """Codebook health of token codes ``(N, K)``: for each slot, the share of the codes it could
    use on N images that it does use (``distinct / min(vocabulary, N)``) and its perplexity
    (``exp`` of the entropy of its codes, in codes: 1 = one code always, ``vocab_size`` = all
    alike). Summarised for slot 0 (the k-means first token with ``vq_first``) and the rest (FSQ).
    ``collapsed`` lists the slots under :data:`USAGE_WARNING`."""
    codes = np.asarray(codes)
    n, K = codes.shape
    usage, perplexity = [], []
    for k in range(K):
        counts = np.bincount(codes[:, k], minlength=vocab_size)
        p = counts[counts > 0] / n
        usage.append(float((counts > 0).sum() / min(vocab_size, n)))
        perplexity.append(float(np.exp(-(p * np.log(p)).sum())))
    rest = slice(1, K) if K > 1 else slice(0, K)
    return {"usage": usage, "perplexity": perplexity, "usage_first": usage[0], "perplexity_first": perplexity[0],
            "usage_rest_mean": float(np.mean(usage[rest])), "usage_rest_min": float(np.min(usage[rest])),
            "perplexity_rest_mean": float(np.mean(perplexity[rest])),
            "collapsed": [k for k in range(K) if usage[k] < USAGE_WARNING]}


@torch.no_grad()
def evaluate(model: Autoencoder, images: torch.Tensor, ks: list[int] | None = None, batch: int = 250) -> dict:
    """Mean PSNR (dB, of the 8-bit images) at each prefix length ``k`` over ``images``, and the
    codebook health of their codes (:func:`code_usage`: ``usage0``/``ppl0`` of slot 0,
    ``usage_min``/``usage_mean``/``ppl_mean`` of the others, ``collapsed`` slots)."""
    was = model.training
    model.eval()
    K = model.cfg.tokens
    ks = ks or prefix_lengths(K)
    ref = ((images.clamp(-1, 1) + 1) * 127.5).round()
    sums = {k: 0.0 for k in ks}
    all_codes = []
    for i in range(0, len(images), batch):
        x = images[i : i + batch]
        _, codes = model.encode(x)
        all_codes.append(codes.numpy())
        for k in ks:
            y = model.decode_codes(codes, torch.full((len(x),), k))
            mse = (((y.clamp(-1, 1) + 1) * 127.5).round() - ref[i : i + batch]).pow(2).flatten(1).mean(1)
            sums[k] += float((10 * torch.log10(255.0**2 / mse.clamp_min(1e-10))).sum())
    model.train(was)
    health = code_usage(np.concatenate(all_codes), model.cfg.vocab_size)
    return {**{f"psnr@{k}": round(sums[k] / len(images), 3) for k in ks},
            "usage0": round(health["usage_first"], 4), "ppl0": round(health["perplexity_first"], 1),
            "usage_min": round(health["usage_rest_min"], 4), "usage_mean": round(health["usage_rest_mean"], 4),
            "ppl_mean": round(health["perplexity_rest_mean"], 1), "collapsed": health["collapsed"]}


def _loss(y: torch.Tensor, x: torch.Tensor, kind: str, ssim_weight: float = 0.0) -> torch.Tensor:
    """The training loss of a batch whose images kept different numbers of latents.

    ``"mse"`` averages squared errors over the batch, so the images that kept few latents (with
    errors several times larger) drive the gradient and the tail latents learn little.
    ``"log-mse"`` averages ``log(MSE)`` per image instead: minus the mean PSNR up to a constant,
    which weighs a decibel gained at k = 32 the same as one at k = 1.
    ``ssim_weight`` adds that times ``1 - SSIM`` (the Gaussian SSIM the evaluation reports): with
    squared error alone, SSIM fell from 1 to 2 tokens while PSNR rose (the residual of the second
    token left flat black backgrounds slightly grey, which SSIM punishes hard).
    """
    if kind == "mse":
        base = F.mse_loss(y, x)
    else:  # "log-mse"
        base = torch.log((y - x).pow(2).flatten(1).mean(1) + 1e-5).mean()
    if not ssim_weight:
        return base
    return base + ssim_weight * (1 - ssim_torch(y, x).mean())


def ssim_torch(y: torch.Tensor, x: torch.Tensor, sigma: float = 1.5, crop: int = 3) -> torch.Tensor:
    """Per-image SSIM of images in [-1, 1], differentiable: the same numbers as
    :func:`adatok.core.metrics.ssim` (scikit-image's with ``gaussian_weights``, ``win_size=7``:
    a Gaussian of sigma 1.5 truncated at 3.5 sigma, borders reflected with the edge pixel, 3 pixels
    cropped). Written here because pytorch-msssim's valid-window SSIM gives other numbers (it
    drops 5 pixels a side, 0.77 against 0.64 on a noisy Fashion-MNIST image)."""
    r = int(3.5 * sigma + 0.5)
    t = torch.arange(-r, r + 1, dtype=y.dtype)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = g / g.sum()
    c = y.shape[1]

    def blur(z: torch.Tensor) -> torch.Tensor:
        for dim in (-1, -2):  # separable; "reflect" in scipy's sense: the edge pixel repeated
            z = torch.cat([z.narrow(dim, 0, r).flip(dim), z, z.narrow(dim, z.shape[dim] - r, r).flip(dim)], dim)
        z = F.conv2d(z, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
        return F.conv2d(z, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)

    x, y = (x + 1) / 2, (y + 1) / 2  # SSIM is not shift-invariant: on [0, 1] like the metric's [0, 255]
    c1, c2 = 0.01**2, 0.03**2
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s[..., crop:-crop, crop:-crop].flatten(1).mean(1)


def prefix_lengths(tokens: int) -> list[int]:
    """The prefix lengths the measurements report for a tokenizer of ``tokens`` tokens: 1, 2, 4,
    8 and 16 where they are shorter, and the whole sequence."""
    return sorted({k for k in (1, 2, 4, 8, 16) if k < tokens} | {tokens})


def default_name(data: str, tokens: int) -> str:
    """A run's tokenizer name when none is given: DATA-K, a folder by its own name (``--data .`` is
    the folder it names, not "")."""
    data_name = (data if data == "fashion-mnist" else "images" if data == GIVEN_IMAGES else Path(data).resolve().name)
    return f"{data_name}-{tokens}"


def check_name(name: str, vocab_size: int, given: bool = True) -> None:
    """Refuse a new run's tokenizer ``name`` under which its ``.atk`` files would be read by another
    tokenizer: a file names the tokenizer that made it, and a registered name (``wavelet``, a shipped
    checkpoint) is found before any folder, so such files were refused as "corrupt" (another payload
    codec). A shipped learned checkpoint's name stays open to a retrain whose tokens take as many
    bits (the shipped one's own recipe: its files read back with ``--tokenizer FOLDER``, and without
    it are refused as made by other weights); ``given``: the name came from ``--name`` (else DATA-K)."""
    from ..core.registry import load, registered

    if not registered(name):
        return
    from .tokenizer import NeuralTokenizer, token_bits  # (here: tokenizer imports this module)

    which = f"--name {name}" if given else f"the name {name} (DATA-K: no --name was given)"
    tok = load(name)
    if not isinstance(tok, NeuralTokenizer):
        raise AdatokError(f"{which} names the built-in tokenizer {name}: an .atk file names the tokenizer that made "
                          f"it, and this checkpoint's files would be read as {name}'s and refused; give another --name")
    bits = token_bits(vocab_size)
    if bits != tok.bits:
        low = 2 ** (tok.bits - 1) + 1 if tok.bits > 1 else 2
        raise AdatokError(f"{which} names the shipped checkpoint {name}, whose tokens take {tok.bits} bits; this "
                          f"model's take {bits} ({vocab_size:,} codes), so its .atk files would be read as the shipped "
                          f"{name}'s and refused; give another --name (a retrain keeps a shipped name only with "
                          f"{tok.bits}-bit tokens: --levels whose product is {low:,} to {2 ** tok.bits:,})")


def _lr(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def train(out: str | Path, model_cfg: ModelConfig | None = None, train_cfg: TrainConfig | None = None,
          name: str | None = None, resume: bool = False, quiet: bool = False,
          images: np.ndarray | None = None, eval_images: np.ndarray | None = None,
          stop_after: int | None = None, force: bool = False, overrides: dict | None = None,
          images_of_data: bool = False) -> dict:
    """Train a learned tokenizer and write its checkpoint to ``out``; return the last evaluation.

    ``images`` / ``eval_images`` (N, H, W, C uint8) are trained on and evaluated on instead of
    loading ``train_cfg.data``: the checkpoint's ``config.json`` then says its data was
    :data:`GIVEN_IMAGES` (it said ``train_cfg.data``, by default Fashion-MNIST, and a resume
    without them trained on that), and a resume needs them given again;
    ``images_of_data``: they are ``train_cfg.data``'s own (``adatok train`` read them), which is
    kept. With
    ``resume``, training continues from the checkpoint in ``out`` with its model and training
    settings (``model_cfg`` and ``train_cfg`` are not read); ``overrides`` changes those of
    :data:`RESUMABLE` (``{"steps": 12000}``: train on to step 12,000). ``stop_after`` ends this run after that many steps (with a
    checkpoint), for training in slices; a resumed run continues exactly where it stopped. A folder
    that holds a checkpoint already is refused unless ``resume`` or ``force`` (start over,
    replacing it); one whose checkpoint files are not a learned tokenizer's (a generator's, files
    of the user's own) is refused even so (:func:`~adatok.neural.folder.check_fresh_start`). The folder is held for the whole run (from its first save when it is new): a
    second run into it at the same time is refused (:func:`~adatok.neural.folder.hold_run_folder`).
    """
    with contextlib.ExitStack() as hold:
        return _train(hold, out, model_cfg, train_cfg, name, resume, quiet, images, eval_images, stop_after, force,
                      overrides, images_of_data)


def _train(hold: contextlib.ExitStack, out, model_cfg, train_cfg, name, resume, quiet, images, eval_images,
           stop_after, force, overrides, images_of_data) -> dict:
    import torch.distributed as dist

    from ..datasets import check_same_data, data_source

    out = Path(out)
    held = int(os.environ.get("RANK", "0")) == 0 and out.is_dir()
    if held:  # before anything is read from it (a resume's checkpoint)
        hold_run_folder(hold, out, resume, force, FAMILY)
    check_fresh_start(out, resume, force, FAMILY)
    overrides = check_overrides(overrides, resume, RESUMABLE)
    train_cfg = train_cfg or TrainConfig()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    main = rank == 0

    start = 0
    source = None  # what the data is (datasets.data_source), kept in config.json for a resume to check
    if resume:
        if not (out / "train_state.safetensors").is_file():
            raise AdatokError(f"nothing to resume in {out}: it has no train_state.safetensors "
                              "(train without --resume to start)")
        model, config = load_model(out)
        model.train()
        try:  # (a hand-edited or other version's config.json: raw KeyError / TypeError before)
            train_cfg = TrainConfig(**{"loss": "mse", "ssim_weight": 0.0, **config["train"], **overrides})
            model_cfg, name, start = model.cfg, config["name"], config["step"]
            if not (is_whole(start) and start >= 0):
                raise ValueError(f"its step {start!r}")
        except (KeyError, TypeError, ValueError) as exc:
            raise AdatokError(f"{out}/config.json cannot be resumed: {type(exc).__name__} {exc}") from None
        if train_cfg.data == GIVEN_IMAGES and (images is None or eval_images is None):
            raise AdatokError(f"{out} was trained on images given to train() (images=, eval_images=), no dataset it "
                              "can read again: resume it with them given again")
        # (adatok train passes the images it read: checked all the same)
        check_same_data(config.get("data_source"), train_cfg.data, out, skip=out)
        source = config.get("data_source")
        if start >= train_cfg.steps:
            past = f"its {start:,} steps already" if start == train_cfg.steps else \
                f"{start:,} steps already, past --steps {train_cfg.steps:,}"
            raise AdatokError(f"{out} has trained {past}: give a larger --steps to train on")
    else:
        model_cfg = model_cfg or ModelConfig()
        torch.manual_seed(train_cfg.seed)
        model = allocated(lambda: Autoencoder(model_cfg),
                          f"width {model_cfg.dim} with {math.prod(model_cfg.levels):,} codes", "--dim or --levels")
        # a folder by its absolute path: a resume from elsewhere reads the same one (images given by a caller
        # with a data name that names no folder: nothing to keep)
        if images is not None and not images_of_data:  # the caller's arrays, not train_cfg.data's images
            if eval_images is None:
                raise AdatokError("images given to train() need eval_images given with them (the held-out part "
                                  f"of {train_cfg.data} is no held-out part of them)")
            train_cfg = replace(train_cfg, data=GIVEN_IMAGES)
        elif train_cfg.data == "fashion-mnist" or Path(train_cfg.data).exists():
            source = data_source(train_cfg.data, times=False, skip=out)  # (its own files, when --out is inside)
            train_cfg = replace(train_cfg, data=source["data"])  # (the folder's absolute path)
    torch.set_num_threads(max(1, train_cfg.threads))  # (the checkpoint's, or --threads given to a resume)
    given = name is not None
    name = name if given else default_name(train_cfg.data, model_cfg.tokens)
    if not resume:  # (a resumed run keeps its checkpoint's name: its files carry it already)
        check_name(name, model_cfg.vocab_size, given)

    if images is None:
        left_out: list = []
        images = load_images(train_cfg.data, "train", train_cfg.crop, skipped=left_out)
        if main:
            report_left_out(left_out, train_cfg.data, out)
    if eval_images is None:
        eval_images = load_images(train_cfg.data, "test", train_cfg.crop)[: train_cfg.eval_images]
    if train_cfg.ssim_weight and model_cfg.image_size < 7:
        raise AdatokError(f"the SSIM loss needs images of at least 7x7 (it leaves out a 3-pixel border), these are "
                          f"{model_cfg.image_size}x{model_cfg.image_size}: train with --ssim-weight 0")
    want = (model_cfg.image_size, model_cfg.image_size, model_cfg.channels)
    for what, imgs in (("training", images), ("held-out", eval_images)):
        if tuple(imgs.shape[1:]) != want:
            raise AdatokError(f"the {what} images are {tuple(imgs.shape[1:])} (H, W, C) but the model is set up for "
                              f"{want}: pass --image-size to match")
    data = images if isinstance(images, Crops) else _to_tensor(images)
    held_out = _to_tensor(eval_images)

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    t0 = time.time()
    if model_cfg.vq_first and not resume:
        pool = data if not isinstance(data, Crops) else data.sample(
            min(20 * model_cfg.vocab_size, 40 * len(data)), torch.Generator().manual_seed(train_cfg.seed))
        over = (f"{len(pool):,} images" if not isinstance(data, Crops) else
                f"{len(pool):,} random {data.size}x{data.size} crops of {len(data):,} images")
        if main and not quiet:
            print(f"first token: k-means codebook of {model_cfg.vocab_size:,} centroids over {over} ...", flush=True)
        # (k-means gives no progress of its own: the bar runs, with the time, from its start to its end)
        fitting = Progress(TextColumn("[bold]k-means"), BarColumn(), TextColumn("{task.fields[info]}"),
                           TimeElapsedColumn(), disable=quiet or not main)
        with fitting:
            task = fitting.add_task("k-means", total=None, info=f"{model_cfg.vocab_size:,} centroids")
            model.set_codebook(fit_codebook(pool, model_cfg.vocab_size, seed=train_cfg.seed, threads=train_cfg.threads))
            fitting.update(task, total=1, completed=1)
        if world > 1:  # every process uses rank 0's codebook
            dist.broadcast(model.centroids, 0)
        if main and not quiet:
            print(f"first token: codebook fit in {time.time() - t0:.0f} s", flush=True)

    ddp_model = model
    if world > 1:
        ddp_model = torch.nn.parallel.DistributedDataParallel(model)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": train_cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=train_cfg.lr, betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(train_cfg.seed * 1_000_003 + start)
    if resume:
        restore_training(out, model, opt, gen)
    if isinstance(data, Crops):
        data.using(gen)
    end = train_cfg.steps if stop_after is None else min(train_cfg.steps, start + max(0, stop_after))

    metrics: dict = {}
    # the step of the checkpoint in out (None: none of this run's yet), for a diverged run to say which is there
    saved = start if resume else None
    replaced = not resume and any((out / f).is_file() for f in CHECKPOINT_FILES)  # (--force: replaced at a save)
    if main and not quiet:
        if isinstance(data, Crops):
            print(f"training on random {data.size}x{data.size} crops of {len(data):,} images of {train_cfg.data} "
                  f"({data.skipped} smaller than that left out)")
        print(f"training {name}: {count_params(model):,} parameters, {len(data):,} images "
              f"{tuple(want)}, K={model_cfg.tokens}, vocabulary {model_cfg.vocab_size}, steps {start}..{train_cfg.steps}"
              + (f", {world} processes" if world > 1 else ""))

    progress = Progress(TextColumn("[bold]train"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                        disable=quiet or not main)
    loss_avg = None

    def save(done: int) -> None:
        """A checkpoint of the run's first ``done`` steps (rank 0's), evaluated first."""
        nonlocal held, metrics
        metrics = evaluate(model, held_out)
        metrics["wall_s"] = round(time.time() - t0, 1)
        if not held:  # a new folder: held from its first save (refused if another run saved there since)
            out.mkdir(parents=True, exist_ok=True)
            hold_run_folder(hold, out, resume, force, FAMILY)
            held = True
        save_checkpoint(out, model, name, train_cfg, done, metrics, opt, generator=gen,
                        extra={"data_source": source})

    done = start
    with progress:
        task = progress.add_task("train", total=train_cfg.steps, completed=start, info="")
        try:
            for step in range(start, end):
                drawn = gen.get_state()  # (where this step's draws start)
                idx = torch.randint(0, len(data), (train_cfg.batch,), generator=gen)
                keep = sample_keep(train_cfg.batch, model_cfg.tokens, gen)
                keep = keep[rank::world]
                # the whole batch on every rank, then each rank's share: Crops draws each image's crop and
                # flip from gen, so every rank must draw them all (a share drawn alone took other crops)
                x = data[idx][rank::world]
                for group in opt.param_groups:
                    group["lr"] = _lr(step, train_cfg)
                y = ddp_model(x, keep)
                # the loss sees what decoding gives, the output clamped to [-1, 1], with a straight-through
                # gradient: the model may overshoot black (or white) at no cost, so flat backgrounds come
                # out exact instead of a little grey, which SSIM punishes hard in dark areas
                y = y + (y.clamp(-1, 1) - y).detach()
                loss = _loss(y, x, train_cfg.loss, train_cfg.ssim_weight)
                diverged = torch.tensor(0.0 if torch.isfinite(loss) else 1.0)
                if world > 1:  # every process stops together
                    dist.all_reduce(diverged)
                if diverged.item():  # stop before a step writes NaN weights (the last checkpoint stays)
                    kept = (f"the checkpoint in {out} is the last one saved (step {saved:,})" if saved is not None else
                            f"this run saved no checkpoint: {out} holds the earlier run's it was to replace" if replaced
                            else f"this run saved no checkpoint (its first save was due at step "
                                 f"{min(end, (start // train_cfg.eval_every + 1) * train_cfg.eval_every):,})")
                    raise AdatokError(f"training diverged at step {step}: the loss is {loss.item()}; {kept}; train again "
                                      f"with a lower --lr (now {train_cfg.lr})")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                with held_interrupts():  # the weights and the step count move together
                    opt.step()
                    done = step + 1  # (an interrupt from here on keeps this step, and its draws)
                lv = loss.item()
                loss_avg = lv if loss_avg is None else 0.98 * loss_avg + 0.02 * lv
                mean_log = loss_avg if train_cfg.loss == "log-mse" else math.log(max(loss_avg, 1e-10))
                psnr_train = 10 * math.log10(4.0) - 10 * mean_log / math.log(10)
                info = f"loss {loss_avg:.4f}" + ("" if train_cfg.ssim_weight else f" (~{psnr_train:.1f} dB, mean over k)")
                progress.update(task, completed=done, info=info)
                if done % train_cfg.eval_every == 0 or done == end:
                    if main:
                        save(done)
                        line = " ".join(f"{k}={v}" for k, v in metrics.items() if k != "collapsed")
                        if not quiet:
                            progress.console.print(f"step {done}: {line}")
                            if metrics["collapsed"]:
                                progress.console.print(
                                    f"warning: slots {metrics['collapsed']} use under {USAGE_WARNING:.0%} of the codes "
                                    "they could on the evaluation images (codebook collapse)")
                    saved = done  # (by rank 0, for every process)
                    if world > 1:
                        dist.barrier()
        except KeyboardInterrupt:  # Ctrl-C (or SIGTERM / SIGHUP under the adatok command): the steps done are kept
            if main and world == 1 and done > (start if saved is None else saved):
                if done == step:  # cut inside a step: its draws made again on resume, as they were made here
                    gen.set_state(drawn)
                save(done)
                progress.console.print(f"{name}: interrupted at step {done:,}: its checkpoint is saved in {out}; "
                                       "--resume goes on from it")
            raise
    if world > 1:
        dist.destroy_process_group()
    return metrics
