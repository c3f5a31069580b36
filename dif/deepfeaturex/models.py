"""DeepFeatureX networks: torchvision backbones as base models, and the complete model (frozen
base models whose pooled features are fused by a Conv1d head)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import DIFError, first_line, shown
from ..safe_pickle import load_weights_only


@dataclass(frozen=True)
class Backbone:
    """A torchvision architecture: its builder name, where its classification head sits, and
    the smallest input it accepts."""

    builder: str
    head: str              # attribute path of the final Linear ("fc", "classifier", "classifier.1", "heads.head")
    min_size: int = 32
    vit: bool = False


BACKBONES: dict[str, Backbone] = {
    **{f"densenet{n}": Backbone(f"densenet{n}", "classifier") for n in (121, 161, 169, 201)},
    **{f"resnet{n}": Backbone(f"resnet{n}", "fc") for n in (18, 34, 50, 101, 152)},
    "resnext101": Backbone("resnext101_32x8d", "fc"),
    "efficientnet_b0": Backbone("efficientnet_b0", "classifier.1"),
    "efficientnet_b4": Backbone("efficientnet_b4", "classifier.1"),
    "googlenet": Backbone("googlenet", "fc"),
    "inception_v3": Backbone("inception_v3", "fc", min_size=75),
    # the authors' vit_l_32 loads vit_l_16 (a bug): here each name builds its own architecture
    **{f"vit_{s}_{p}": Backbone(f"vit_{s}_{p}", "heads.head", vit=True) for s in ("b", "l") for p in (16, 32)},
}


def backbone_spec(name: str) -> Backbone:
    if name not in BACKBONES:
        raise DIFError(f"unknown backbone {name!r}: use one of {', '.join(BACKBONES)}")
    return BACKBONES[name]


def _get(module: nn.Module, path: str) -> nn.Module:
    for part in path.split("."):
        module = module[int(part)] if part.isdigit() else getattr(module, part)  # type: ignore[index]
    return module


def _set(module: nn.Module, path: str, value: nn.Module) -> None:
    *parents, last = path.split(".")
    for part in parents:
        module = module[int(part)] if part.isdigit() else getattr(module, part)  # type: ignore[index]
    if last.isdigit():
        module[int(last)] = value  # type: ignore[index]
    else:
        setattr(module, last, value)


def imagenet_weights_file(name: str) -> tuple[object, Path]:
    """torchvision's ImageNet weights entry for a backbone and where its file lies in the torch
    hub cache (``$TORCH_HOME/hub/checkpoints``)."""
    import torchvision

    weights = torchvision.models.get_model_weights(backbone_spec(name).builder).DEFAULT
    return weights, Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def _download(url: str, path: Path, name: str) -> None:
    """Fetch torchvision's weights file into the torch hub cache (checked against the hash in its
    name); it is then read like any local file, with ``weights_only=True``. Offline: one line
    saying where to put the file."""
    import re
    import tempfile

    m = re.search(r"-([0-9a-f]{8,})\.", path.name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(fd)
        try:
            torch.hub.download_url_to_file(url, tmp, hash_prefix=m.group(1) if m else None, progress=False)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except Exception as exc:
        raise DIFError(f"ImageNet weights for {name} are not in the cache and cannot be downloaded "
                       f"({first_line(exc, 80)}): put {path.name} in {path.parent} (or pass --pretrained PATH or "
                       "none)") from None


def _load_state(path: Path, name: str) -> dict:
    sd = load_weights_only(path, f"weights file for {name}")
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise DIFError(f"{shown(path)} is not a state dict of tensors")
    return sd


def build_backbone(name: str, num_classes: int = 2, pretrained: str = "none", image_size: int = 224) -> tuple[nn.Module, int]:
    """A backbone with a fresh ``num_classes``-way head, and its feature width D.

    ``pretrained``: ``none`` (random init), ``imagenet`` (torchvision's weights, read from the
    torch hub cache; nothing is downloaded when the machine is offline: the error says where to
    put the file), or the path of a local state dict of the same architecture (its 1000-class
    ImageNet head, or no head)."""
    import torchvision

    spec = backbone_spec(name)
    kw: dict = {}
    if spec.builder in ("googlenet", "inception_v3"):
        kw["aux_logits"] = False
        kw["init_weights"] = pretrained == "none"
        kw["transform_input"] = pretrained == "imagenet"  # their ImageNet weights expect it
    if spec.vit:
        if image_size % int(spec.builder.rsplit("_", 1)[1]):
            raise DIFError(f"{name} needs an input size divisible by its patch size (got {image_size})")
        kw["image_size"] = image_size
    model = torchvision.models.get_model(spec.builder, weights=None, **kw)
    if pretrained != "none":
        if pretrained == "imagenet":
            weights, path = imagenet_weights_file(name)
            if not path.is_file():
                _download(weights.url, path, name)
            sd = _load_state(path, name)
        else:
            path = Path(pretrained)
            if not path.is_file():
                raise DIFError(f"--pretrained {shown(path)}: file not found (use imagenet, none or a state dict path)")
            sd = _load_state(path, name)
        sd = {k: v for k, v in sd.items() if not k.startswith(("AuxLogits.", "aux1.", "aux2."))}
        head_keys = {f"{spec.head}.weight", f"{spec.head}.bias"}
        body = {k: v for k, v in sd.items() if k not in head_keys}
        own = model.state_dict()
        if spec.vit and "encoder.pos_embedding" in body and body["encoder.pos_embedding"].shape != \
                own["encoder.pos_embedding"].shape:
            raise DIFError(f"--pretrained weights of {name} were made for another input size than {image_size}")
        wrong = [k for k, v in body.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
        if wrong:  # checked here: load_state_dict would raise a size-mismatch RuntimeError
            k = wrong[0]
            raise DIFError(f"--pretrained weights do not fit {name}: {shown(k)} is {tuple(body[k].shape)}, the "
                           f"network's is {tuple(own[k].shape)} ({len(wrong)} tensor(s) of another shape)")
        missing, unexpected = model.load_state_dict(body, strict=False)
        missing = [k for k in missing if k not in head_keys]
        if missing or unexpected:
            raise DIFError(f"--pretrained weights do not fit {name} (weights of another architecture?): "
                           f"{len(missing)} missing, {len(unexpected)} unexpected keys, e.g. "
                           f"{(missing or unexpected)[0]}")
    head = _get(model, spec.head)
    assert isinstance(head, nn.Linear)
    _set(model, spec.head, nn.Linear(head.in_features, num_classes))
    return model, head.in_features


def headless(model: nn.Module, name: str) -> nn.Module:
    """The same network returning its pooled features (the head replaced by the identity)."""
    _set(model, backbone_spec(name).head, nn.Identity())
    return model


class FusionHead(nn.Module):
    """The complete model's head over stacked base-model features (B, C, D): Conv1d C->16 (k7, s2)
    -> 64 (k5, s2) -> 256 -> 512 -> 1024 (k3, s1), each followed by ReLU and BatchNorm, global
    average pooling, Linear(1024 -> classes)."""

    def __init__(self, in_models: int, classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for cin, cout, k, s in ((in_models, 16, 7, 2), (16, 64, 5, 2), (64, 256, 3, 1), (256, 512, 3, 1),
                                (512, 1024, 3, 1)):
            layers += [nn.Conv1d(cin, cout, k, stride=s), nn.ReLU(inplace=True), nn.BatchNorm1d(cout)]
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool1d(1), nn.Flatten())
        self.fc = nn.Linear(1024, classes)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(feats))


class CompleteModel(nn.Module):
    """Frozen base models (one per class, heads removed) + the fusion head. The base models stay
    in eval mode whatever ``train()`` is called with, so their BatchNorm statistics never move
    (the authors' code left them in train mode)."""

    def __init__(self, bases: list[nn.Module], head: FusionHead) -> None:
        super().__init__()
        self.bases = nn.ModuleList(bases)
        for b in self.bases:
            b.eval()
            for p in b.parameters():
                p.requires_grad_(False)
        self.head = head

    def train(self, mode: bool = True) -> "CompleteModel":
        super().train(mode)
        self.bases.eval()
        return self

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, D) pooled features of the C base models."""
        return torch.stack([b(x).flatten(1) for b in self.bases], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
