"""Head-only training on cached backbone features: run the frozen backbone once.

``split_model`` cuts a torchvision classifier into ``backbone`` and ``head`` modules that
share the model's parameters, with ``head(backbone(x)) == model(x)``; head-only training
then costs one backbone pass per image instead of one per image per epoch.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..models.torchvision_zoo import arch_info, split_backbone_head

#: caches bigger than this are stored as float16 (halves memory; ~1e-3 relative rounding)
FP32_CACHE_LIMIT = 512 * 1024 * 1024


def split_model(model: nn.Module, arch: str) -> tuple[nn.Module, nn.Module]:
    """``(backbone, head)`` sharing ``model``'s parameters; their composition is ``model``."""
    hooked = split_backbone_head(model, arch)
    if hooked is not None:
        return hooked
    family = arch_info(arch).family
    if family == "resnet":
        names = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
        body = [getattr(model, n) for n in names]
        return nn.Sequential(*body, model.avgpool, nn.Flatten(1)), model.fc
    if family == "squeezenet":
        return model.features, nn.Sequential(model.classifier, nn.Flatten(1))
    if arch == "mobilenet_v2":
        pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        return nn.Sequential(model.features, pool), model.classifier
    if arch == "mobilenet_v3_small":
        cls = model.classifier
        backbone = nn.Sequential(
            model.features, model.avgpool, nn.Flatten(1), cls[0], cls[1], cls[2]
        )
        return backbone, cls[3]
    raise ValueError(f"no backbone/head split for {arch}")  # pragma: no cover


@torch.no_grad()
def extract_features(
    backbone: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    total: int,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    channels_last: bool = False,
    progress: bool = True,
    desc: str = "features",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the frozen backbone (eval mode) over ``batches``; returns (features, labels)."""
    was_training = backbone.training
    backbone.eval()
    feats: torch.Tensor | None = None
    labels = torch.empty(total, dtype=torch.int64)
    pos = 0
    bar = tqdm(total=total, desc=desc, unit="img", disable=not progress, leave=False)
    try:
        for images, targets in batches:
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with autocast():
                out = backbone(images)
            out = out.float()
            if feats is None:
                per_image = out[0].numel() * 4
                dtype = torch.float32 if per_image * total <= FP32_CACHE_LIMIT else torch.float16
                feats = torch.empty((total, *out.shape[1:]), dtype=dtype)
            n = out.shape[0]
            feats[pos : pos + n] = out.to(feats.dtype)
            labels[pos : pos + n] = targets
            pos += n
            bar.update(n)
    finally:
        bar.close()
        backbone.train(was_training)
    if feats is None or pos != total:
        raise RuntimeError(f"feature extraction saw {pos} images, expected {total}")
    return feats, labels


# ---------------------------------------------------------------------------- reuse across runs
# A hyperparameter search trains many heads on the same frozen backbone; extracting the
# features once per search (not once per trial) is what makes a head-only trial take seconds.
# The cache is off unless a caller opts in with ``feature_cache(directory)``, so ordinary
# training never writes or reads anything extra.
_CACHE_DIR: ContextVar[Path | None] = ContextVar("caltech_edge_feature_cache", default=None)


@contextlib.contextmanager
def feature_cache(directory: str | Path) -> Iterator[Path]:
    """Within this block, cached-feature training stores/reuses features under ``directory``."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    token = _CACHE_DIR.set(path)
    try:
        yield path
    finally:
        _CACHE_DIR.reset(token)


def backbone_fingerprint(backbone: nn.Module) -> str:
    """SHA-256 of the backbone's parameters and buffers: same weights, same features."""
    digest = hashlib.sha256()
    for name, tensor in sorted(backbone.state_dict().items()):
        digest.update(name.encode())
        digest.update(
            tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        )
    return digest.hexdigest()


def cached_features(
    backbone: nn.Module,
    key: dict[str, Any],
    compute: Callable[[], tuple[torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """``compute()``, or its earlier result when ``feature_cache`` is active and ``key``
    (data, split indices, preprocessing...) plus the backbone's weights match."""
    directory = _CACHE_DIR.get()
    if directory is None:
        return compute()
    text = json.dumps(key, sort_keys=True, default=str) + backbone_fingerprint(backbone)
    path = directory / f"features-{hashlib.sha256(text.encode()).hexdigest()[:24]}.pt"
    with _exclusive(path.with_suffix(".lock")):  # parallel workers: one computes, others wait
        if path.is_file():
            try:
                stored = torch.load(path, weights_only=True)
                return stored["features"], stored["labels"]
            except (RuntimeError, KeyError, OSError, EOFError):  # a torn file: recompute it
                pass
        from .._io import atomic_write_bytes

        feats, labels = compute()
        buffer = io.BytesIO()
        torch.save({"features": feats, "labels": labels}, buffer)
        atomic_write_bytes(path, buffer.getvalue())
        return feats, labels


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """An advisory file lock (POSIX ``flock``); without fcntl, no lock (work is repeated)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(lock_path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
