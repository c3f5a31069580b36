"""Training and testing DeepFeatureX: base models on unbalanced sets, the complete model on the
frozen base models' features, and the authors' test metrics."""
from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import opt
from ..errors import DIFError
from ..sampling import make_batches
from .data import normalise, train_val_split
from .models import BACKBONES, CompleteModel, FusionHead, backbone_spec, build_backbone, headless

log = logging.getLogger(__name__)


@dataclass
class DFXConfig:
    """DeepFeatureX hyper-parameters (the authors' defaults); each field declares its flags."""

    backbone: str = opt("resnet18", "torchvision backbone: " + ", ".join(BACKBONES), ("--backbone",),
                        choices=tuple(BACKBONES))
    image_size: int = opt(256, "images are resized to SIZE x SIZE (ViT: then a central 7/8 crop, 224 at 256)",
                          ("--image_size", "--image-size"), 32, 1024)
    epochs: int = opt(50, "training epochs (the best epoch by validation loss is kept)", ("--epochs",), 1, 100_000)
    batch_size: int = opt(32, "batch size", ("--batch_size", "--batch-size"), 2, 4096)
    lr: float = opt(1e-4, "Adam learning rate", ("--lr",), 0, 1, low_open=True)
    weight_decay: float = opt(1e-3, "Adam weight decay", ("--weight_decay", "--weight-decay"), 0, 1)
    perc_to_take: float = opt(0.04, "share of every other architecture folder in a base model's set",
                              ("--perc_to_take", "--perc-to-take"), 0, 1, low_open=True)
    val_fraction: float = opt(0.2, "validation share (stratified) for choosing the best epoch",
                              ("--val_fraction", "--val-fraction"), 0, 0.9)
    seed: int = opt(0, "seed of the split, the sampling, the weights and the batches", ("--seed",), 0, 2**32 - 1)
    pretrained: str = opt("none", "backbone weights: none, imagenet (torchvision's, from the torch hub cache) or a "
                                  "state dict PATH", ("--pretrained",))

    @property
    def crop(self) -> int:
        """ViT input: a central crop of 7/8 of the resized image (224 at 256), a multiple of the patch."""
        spec = backbone_spec(self.backbone)
        if not spec.vit:
            return 0
        patch = int(spec.builder.rsplit("_", 1)[1])
        return max(patch, (self.image_size * 7 // 8) // patch * patch)

    @property
    def input_side(self) -> int:
        side = self.crop or self.image_size
        if side < backbone_spec(self.backbone).min_size:
            raise DIFError(f"{self.backbone} needs inputs of at least {backbone_spec(self.backbone).min_size} px "
                           f"(got {side})")
        return side


def _autocast(device: torch.device):
    """bfloat16 autocast on CUDA (no loss scaling needed); nothing on CPU."""
    import contextlib

    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


def _epochs(model: nn.Module, forward, x: torch.Tensor, y: torch.Tensor, cfg: DFXConfig, device: torch.device,
            weight: Optional[torch.Tensor] = None, progress: bool = False, desc: str = "Training") -> tuple[dict, dict]:
    """The shared loop: Adam, cross-entropy, seeded batches, the best epoch by validation loss.
    ``forward(model, xb)`` gives logits; ``x`` and ``y`` live on the CPU."""
    from tqdm.auto import tqdm

    tr, va = train_val_split(y.numpy(), cfg.val_fraction, cfg.seed)
    if len(va) == 0:
        va = tr
    gen = torch.Generator().manual_seed(cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt_ = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    w = None if weight is None else weight.to(device)
    best, best_state, history = float("inf"), copy.deepcopy(model.state_dict()), {"train_loss": [], "val_loss": []}
    bar = tqdm(range(1, cfg.epochs + 1), desc=desc, disable=not progress, dynamic_ncols=True, leave=False)
    for _ in bar:
        model.train()
        losses = []
        for b in make_batches(len(tr), cfg.batch_size, gen):
            idx = torch.from_numpy(tr)[b]
            xb, yb = x[idx].to(device), y[idx].to(device)
            with _autocast(device):
                loss = F.cross_entropy(forward(model, xb).float(), yb, weight=w)
            opt_.zero_grad(set_to_none=True)
            loss.backward()
            opt_.step()
            losses.append(float(loss.detach()))
        model.eval()
        with torch.no_grad(), _autocast(device):
            vl = []
            for i in range(0, len(va), cfg.batch_size):
                idx = torch.from_numpy(va[i:i + cfg.batch_size])
                out = forward(model, x[idx].to(device)).float()
                vl.append(float(F.cross_entropy(out, y[idx].to(device), weight=w, reduction="sum")))
        val = sum(vl) / len(va)
        if not np.isfinite(val) or not np.isfinite(np.mean(losses)):
            raise DIFError(f"{desc}: training diverged (NaN or infinite loss); try a smaller --lr")
        history["train_loss"].append(float(np.mean(losses)))
        history["val_loss"].append(val)
        if val < best:
            best, best_state = val, copy.deepcopy(model.state_dict())
        bar.set_postfix_str(f"loss {history['train_loss'][-1]:.3f} | val {val:.3f}")
    history["best_epoch"] = int(np.argmin(history["val_loss"])) + 1
    return best_state, history


def train_base(images: torch.Tensor, labels: Sequence[int], cfg: DFXConfig, device: torch.device,
               progress: bool = False, desc: str = "Base model") -> tuple[nn.Module, dict]:
    """A 2-class base model (1 = its main class) fine-tuned on uint8 images (N x 3 x S x S)."""
    y = torch.as_tensor(list(labels), dtype=torch.long)
    if len(set(y.tolist())) < 2:
        raise DIFError(f"{desc}: its training set holds only one class")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model, _ = build_backbone(cfg.backbone, 2, cfg.pretrained, cfg.input_side)
    model.to(device)
    t0 = time.perf_counter()
    state, history = _epochs(model, lambda m, xb: m(normalise(xb)), images, y, cfg, device, progress=progress, desc=desc)
    model.load_state_dict(state)
    history["seconds"] = time.perf_counter() - t0
    return model.eval(), history


def base_features(model: CompleteModel, images: torch.Tensor, device: torch.device, batch: int = 32) -> torch.Tensor:
    """(N, C, D) features of the frozen base models, computed once (they never change)."""
    model.eval()
    out = []
    with torch.no_grad(), _autocast(device):
        for i in range(0, len(images), batch):
            out.append(model.features(normalise(images[i:i + batch].to(device))).float().cpu())
    return torch.cat(out)


def train_complete(bases: list[nn.Module], images: torch.Tensor, labels: Sequence[int], n_classes: int,
                   cfg: DFXConfig, device: torch.device, progress: bool = False) -> tuple[CompleteModel, dict]:
    """The fusion head trained on the frozen base models' features, with class-weighted
    cross-entropy (weight of a class = 1 - its share)."""
    bases = [headless(b, cfg.backbone) for b in bases]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = CompleteModel(bases, FusionHead(len(bases), n_classes)).to(device)
    y = torch.as_tensor(list(labels), dtype=torch.long)
    share = torch.bincount(y, minlength=n_classes).float() / len(y)
    t0 = time.perf_counter()
    feats = base_features(model, images, device, cfg.batch_size)
    state, history = _epochs(model.head, lambda m, fb: m(fb), feats, y, cfg, device, weight=1.0 - share,
                             progress=progress, desc="Complete model")
    model.head.load_state_dict(state)
    history["seconds"] = time.perf_counter() - t0
    return model.eval(), history


@torch.no_grad()
def predict_proba(model: CompleteModel, images: torch.Tensor, device: torch.device, batch: int = 32) -> np.ndarray:
    """Class probabilities (N x classes) of uint8 or [0, 1] images."""
    model.eval()
    out = []
    for i in range(0, len(images), batch):
        with _autocast(device):
            logits = model(normalise(images[i:i + batch].to(device))).float()
        out.append(torch.softmax(logits, dim=1).cpu())
    return torch.cat(out).double().numpy() if out else np.empty((0, 0))


def test_metrics(proba: np.ndarray, labels: Sequence[int], classes: Sequence[str], real: int, seed: int = 0) -> dict:
    """The authors' tests: multi-class accuracy, per-class precision / recall / F1, the confusion
    matrix; binary (every generated class = fake) accuracy on a balanced subsample (as many fakes
    as reals, drawn with ``seed``), AP and AUC of P(fake) = 1 - P(real)."""
    from sklearn.metrics import (average_precision_score, confusion_matrix, precision_recall_fscore_support,
                                 roc_auc_score)

    y = np.asarray(labels)
    pred = proba.argmax(axis=1)
    k = len(classes)
    p, r, f, n = precision_recall_fscore_support(y, pred, labels=list(range(k)), zero_division=0)
    fake = (y != real).astype(int)
    p_fake = 1.0 - proba[:, real]
    rng = np.random.default_rng(seed)
    reals, fakes = np.flatnonzero(fake == 0), np.flatnonzero(fake == 1)
    m = min(len(reals), len(fakes))
    sub = np.concatenate([rng.choice(reals, m, replace=False), rng.choice(fakes, m, replace=False)]) if m else np.array([], int)
    both = bool(len(reals) and len(fakes))
    return {
        "accuracy": float((pred == y).mean()),
        "per_class": {c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "n": int(n[i])}
                      for i, c in enumerate(classes)},
        "confusion_matrix": confusion_matrix(y, pred, labels=list(range(k))).tolist(),
        "binary_accuracy_balanced": float(((p_fake[sub] > 0.5).astype(int) == fake[sub]).mean()) if m else None,
        "binary_ap": float(average_precision_score(fake, p_fake)) if both else None,
        "binary_auc": float(roc_auc_score(fake, p_fake)) if both else None,
        "n_images": int(len(y)),
    }
