"""Helpers of the export tests: tiny torch models saved the way users have them (a run
directory, a bare state dict). A uniquely named module, so no clash with other conftests."""

from __future__ import annotations

from pathlib import Path

import torch

from caltech_edge.card import ModelCard
from caltech_edge.data.synth import class_names
from caltech_edge.data.transforms import PreprocessSpec
from caltech_edge.models import create_model

SIZE = 64
CLASSES = tuple(class_names(4))  # the synthetic dataset's folders: labels map, accuracy counts


def make_run(root: Path, arch: str, *, size: int = SIZE, seed: int = 0) -> Path:
    """A torch run directory as training writes it: card.json + model.pt."""
    torch.manual_seed(seed)
    model = create_model(arch, len(CLASSES), weights=None).eval()
    root.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), root / "model.pt")
    ModelCard(arch=arch, class_names=CLASSES, preprocess=PreprocessSpec(image_size=size)).save(
        root / "card.json"
    )
    return root


def make_checkpoint(folder: Path, arch: str, *, seed: int = 1) -> tuple[Path, Path]:
    """A bare torchvision state dict + an ``index<TAB>name`` classes file (trained elsewhere)."""
    torch.manual_seed(seed)
    model = create_model(arch, len(CLASSES), weights=None).eval()
    folder.mkdir(parents=True, exist_ok=True)
    ckpt = folder / f"{arch}.pth"
    torch.save(model.state_dict(), ckpt)
    classes = folder / "classes.txt"
    classes.write_text("".join(f"{i}\t{n}\n" for i, n in enumerate(CLASSES)))
    return ckpt, classes
