"""A seeded, learnable synthetic dataset in exactly the Caltech-256 layout.

Real Caltech-256 cannot be downloaded in tests or CI, so quickstart and the test suite run
on this instead. Each class is a shape in its own colour on a noisy background at a random
position, scale and rotation: easy enough that a small CNN learns it in CPU minutes, varied
enough that a model which ignores the image cannot. It is always labelled *synthetic*.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

SHAPES = ("circle", "square", "triangle", "cross", "ring", "bar", "star", "diamond")
COLORS = (
    ("red", (220, 40, 40)),
    ("green", (40, 180, 60)),
    ("blue", (40, 80, 220)),
    ("yellow", (230, 210, 40)),
    ("magenta", (200, 50, 200)),
    ("cyan", (40, 200, 210)),
    ("orange", (240, 140, 30)),
    ("white", (245, 245, 245)),
)
CATEGORIES_DIR = "256_ObjectCategories"
MARKER = "synthetic.json"
MAX_CLASSES = len(SHAPES) * len(COLORS)


@dataclass(frozen=True)
class SynthSpec:
    classes: int = 5
    per_class: int = 20
    size: int = 96
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.classes <= MAX_CLASSES:
            raise ValueError(f"classes must be in 1..{MAX_CLASSES}, got {self.classes}")
        if self.per_class < 1:
            raise ValueError(f"per_class must be >= 1, got {self.per_class}")
        if self.size < 16:
            raise ValueError(f"size must be >= 16 px, got {self.size}")


def class_names(classes: int) -> list[str]:
    """``001.synthetic-red-circle`` ...: shape varies fastest so neighbours differ in shape."""
    names = []
    for i in range(classes):
        shape = SHAPES[i % len(SHAPES)]
        color = COLORS[(i // len(SHAPES) + i) % len(COLORS)][0]
        names.append(f"{i + 1:03d}.synthetic-{color}-{shape}")
    return names


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    if shape == "triangle":
        pts = [(0, -1), (0.87, 0.5), (-0.87, 0.5)]
    elif shape == "diamond":
        pts = [(0, -1), (0.6, 0), (0, 1), (-0.6, 0)]
    elif shape == "star":
        pts = [
            (np.cos(a) * (1 if k % 2 == 0 else 0.45), np.sin(a) * (1 if k % 2 == 0 else 0.45))
            for k, a in enumerate(np.linspace(-np.pi / 2, 1.5 * np.pi, 10, endpoint=False))
        ]
    elif shape == "bar":
        pts = [(-1, -0.3), (1, -0.3), (1, 0.3), (-1, 0.3)]
    else:  # square
        pts = [(-0.75, -0.75), (0.75, -0.75), (0.75, 0.75), (-0.75, 0.75)]
    c, s = np.cos(angle), np.sin(angle)
    arr = np.array([(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in pts])
    return arr.round().astype(np.int32)


def render(index: int, rng: np.random.Generator, size: int) -> np.ndarray:
    """One RGB uint8 image of class ``index``."""
    shape = SHAPES[index % len(SHAPES)]
    color = np.array(COLORS[(index // len(SHAPES) + index) % len(COLORS)][1], dtype=np.float64)
    h = size
    w = int(size * rng.uniform(1.0, 1.4))  # real photos are rarely square
    bg = rng.uniform(20, 120, size=3)
    img = np.clip(bg + rng.normal(0, 18, size=(h, w, 3)), 0, 255).astype(np.uint8)
    r = rng.uniform(0.22, 0.34) * min(h, w)
    cx, cy = rng.uniform(0.4, 0.6) * w, rng.uniform(0.4, 0.6) * h
    fg = tuple(int(v) for v in np.clip(color * rng.uniform(0.85, 1.1), 0, 255))
    angle = rng.uniform(-0.5, 0.5)
    thick = max(2, int(r / 4))
    if shape == "circle":
        cv2.circle(img, (int(cx), int(cy)), int(r), fg, -1, cv2.LINE_AA)
    elif shape == "ring":
        cv2.circle(img, (int(cx), int(cy)), int(r), fg, thick, cv2.LINE_AA)
    elif shape == "cross":
        for a in (angle, angle + np.pi / 2):
            dx, dy = r * np.cos(a), r * np.sin(a)
            p1, p2 = (int(cx - dx), int(cy - dy)), (int(cx + dx), int(cy + dy))
            cv2.line(img, p1, p2, fg, thick, cv2.LINE_AA)
    else:
        cv2.fillPoly(img, [_polygon(shape, cx, cy, r, angle)], fg, cv2.LINE_AA)
    return img


def synthesize(
    root: str | Path, *, classes: int = 5, per_class: int = 20, size: int = 96, seed: int = 0
) -> Path:
    """Write the dataset under ``root/256_ObjectCategories`` and return that folder.

    The same arguments always give byte-identical files.
    """
    spec = SynthSpec(classes, per_class, size, seed)
    root = Path(root)
    base = root / CATEGORIES_DIR
    for index, name in enumerate(class_names(spec.classes)):
        folder = base / name
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng([spec.seed, index])
        number = name.split(".", 1)[0]
        for j in range(spec.per_class):
            rgb = render(index, rng, spec.size)
            ok, buf = cv2.imencode(
                ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92]
            )
            if not ok:  # pragma: no cover - OpenCV always encodes uint8 RGB
                raise RuntimeError("JPEG encoding failed")
            (folder / f"{number}_{j + 1:04d}.jpg").write_bytes(buf.tobytes())
    (root / MARKER).write_text(json.dumps({"synthetic": True, **asdict(spec)}, indent=2) + "\n")
    return base


def is_synthetic(root: str | Path) -> bool:
    """True when ``root`` (or its parent, for the categories folder) was written by us."""
    root = Path(root)
    return (root / MARKER).is_file() or (root.parent / MARKER).is_file()
