"""The in-project judge: a small Fashion-MNIST CNN classifier, trained here, that scores generated
images without any downloaded backbone.

It gives (a) the **class accuracy** of class-conditional samples (did the model draw the class it
was asked for?) and (b) **FD-fmnist**: the Fréchet distance between the judge's penultimate
features (128 numbers an image) of two image sets, e.g. 10,000 samples against the test split.
FD-fmnist is a proxy in the spirit of FID, with the project's own classifier in place of
Inception: it is never called FID, and its values are not comparable to FID values.

    python -m adatok.generate.judge --out src/adatok/checkpoints/fmnist-judge   # trains it

The shipped judge is the folder ``checkpoints/fmnist-judge`` (config.json + model.safetensors).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core.checks import is_whole
from ..core.errors import AdatokError
from ..neural.folder import load_weights, read_json, unseeded, write_folder
from ..neural.tokenizer import count

FAMILY = "judge"
#: Where the shipped judge lives.
JUDGE_DIR = Path(__file__).resolve().parent.parent / "checkpoints" / "fmnist-judge"


@dataclass
class JudgeConfig:
    """The judge's shape and training; stored in ``config.json``."""

    classes: int = 10
    width: int = 32
    features: int = 128
    epochs: int = 5
    batch: int = 128
    lr: float = 2e-3
    seed: int = 0


class Judge(nn.Module):
    """Three conv blocks (28 -> 14 -> 7 -> 3), a 128-wide feature layer, a linear classifier."""

    def __init__(self, cfg: JudgeConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width

        def block(cin: int, cout: int) -> nn.Sequential:  # one conv a scale: it trains in minutes on a CPU
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2))

        self.body = nn.Sequential(block(1, w), block(w, 2 * w), block(2 * w, 4 * w), nn.Flatten(),
                                  nn.Linear(4 * w * 3 * 3, cfg.features), nn.ReLU())
        self.head = nn.Linear(cfg.features, cfg.classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 28, 28) in [0, 1] -> (N, features): what FD-fmnist compares."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def _batches(images: np.ndarray, batch: int = 500):
    if len(images) == 0:  # (features of none: a raw numpy error; an accuracy of none: NaN)
        raise AdatokError("the judge needs at least one image, got none")
    for i in range(0, len(images), batch):
        chunk = np.asarray(images[i : i + batch])
        if chunk.ndim != 4 or chunk.shape[1:] != (28, 28, 1) or chunk.dtype != np.uint8:
            raise AdatokError(f"the judge reads 28x28x1 uint8 images, got {chunk.shape} {chunk.dtype}")
        yield torch.from_numpy(chunk).permute(0, 3, 1, 2).float().div_(255.0)


def train_judge(out: str | Path, cfg: JudgeConfig | None = None, quiet: bool = False) -> Judge:
    """Train the judge on Fashion-MNIST's training split (random shifts of up to 2 pixels and
    horizontal flips), report its test accuracy, and write the folder ``out``."""
    from ..datasets import load

    cfg = cfg or JudgeConfig()
    for what, v in (("epochs", cfg.epochs), ("batch", cfg.batch)):  # (0 epochs was OneCycleLR's error, after loading)
        if not (is_whole(v) and v >= 1):
            raise AdatokError(f"the judge's {what} is a whole number >= 1, got {v!r}")
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    train, test = load("fashion-mnist", split="train"), load("fashion-mnist", split="test")
    x = torch.from_numpy(np.stack(train.images)).permute(0, 3, 1, 2).float().div_(255.0)
    y = torch.from_numpy(train.labels)
    model = Judge(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    steps = cfg.epochs * (len(x) // cfg.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=steps)
    t0, step = time.time(), 0
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x) - cfg.batch + 1, cfg.batch):
            idx = order[i : i + cfg.batch]
            xb = x[idx]
            if torch.rand(1, generator=gen).item() < 0.5:
                xb = xb.flip(3)
            dy, dx = (int(v) for v in torch.randint(-2, 3, (2,), generator=gen))
            xb = torch.roll(xb, (dy, dx), (2, 3))
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
        acc = accuracy(model, np.stack(test.images), test.labels)
        if not quiet:
            print(f"epoch {epoch + 1}/{cfg.epochs}: loss {loss.item():.3f}, test accuracy {100 * acc:.2f}% "
                  f"({time.time() - t0:.0f} s)", flush=True)
    config = {"family": FAMILY, "name": Path(out).name, "config": asdict(cfg), "test_accuracy": acc,
              "train_seconds": round(time.time() - t0, 1), "data": "fashion-mnist train (60,000)",
              "command": f"python -m adatok.generate.judge --out {out}"}
    write_folder(Path(out), model, config)
    return model.eval()


def load_judge(folder: str | Path | None = None) -> Judge:
    """The judge of a folder (default: the shipped one), in eval mode."""
    folder = Path(folder) if folder is not None else JUDGE_DIR
    config = read_json(folder)
    if config.get("family") != FAMILY:
        raise AdatokError(f"{folder} is not a judge checkpoint (family {config.get('family')!r})")
    return load_weights(folder, unseeded(lambda: Judge(JudgeConfig(**config["config"]))))


@torch.no_grad()
def predict(judge: Judge, images: np.ndarray) -> np.ndarray:
    """The judge's class for each 28x28x1 uint8 image."""
    judge.eval()
    return np.concatenate([judge(xb).argmax(1).numpy() for xb in _batches(images)] or [np.zeros(0, np.int64)])


def accuracy(judge: Judge, images: np.ndarray, labels: np.ndarray) -> float:
    """Share of ``images`` the judge puts in the class ``labels`` gives: one label 0..9 an image
    (anything else is refused: one label for many images, or -1, "no class", which would count as a
    miss)."""
    labels = np.asarray(labels)
    if labels.shape != (len(images),) or not np.isin(labels, np.arange(10)).all():
        raise AdatokError(f"the judge needs one class 0..9 for each of the {len(images)} images, got labels of "
                          f"shape {labels.shape}" + ("" if labels.shape != (len(images),) else
                                                     f" with {sorted(set(labels[~np.isin(labels, np.arange(10))].tolist()))[:3]}"))
    return float((predict(judge, images) == labels).mean())


@torch.no_grad()
def features(judge: Judge, images: np.ndarray) -> np.ndarray:
    """The judge's penultimate features of each image, float64 (N, 128)."""
    judge.eval()
    return np.concatenate([judge.features(xb).double().numpy() for xb in _batches(images)])


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N x D each):
    ``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))``."""
    from scipy import linalg

    if len(a) < 2 or len(b) < 2:  # (a covariance of one row is NaN: a raw scipy error)
        raise AdatokError(f"a Fréchet distance needs at least 2 images a side, got {len(a)} and {len(b)}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = np.real(linalg.sqrtm(s_a @ s_b))
    # (at least 0: rounding gave -8e-5 for a set against itself)
    return max(0.0, float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * root)))


def fd_fmnist(judge: Judge, images: np.ndarray, reference: np.ndarray) -> float:
    """FD-fmnist of ``images`` against ``reference`` (both 28x28x1 uint8): the Fréchet distance of
    the judge's features. A proxy, never FID."""
    return frechet_distance(features(judge, images), features(judge, reference))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Train the Fashion-MNIST judge (classifier for class accuracy "
                                             "and FD-fmnist).")
    ap.add_argument("--out", default=str(JUDGE_DIR))
    ap.add_argument("--epochs", type=count, default=JudgeConfig.epochs)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=count, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    train_judge(args.out, JudgeConfig(epochs=args.epochs, seed=args.seed))


if __name__ == "__main__":
    main()
