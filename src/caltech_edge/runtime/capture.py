"""Retraining capture: keep the frames the model was unsure about, in the dataset layout.

Low-confidence frames (top-1 probability below ``threshold``) and optionally a random
sample of all frames are saved as JPEG under ``ROOT/NNN.label/`` (``NNN`` = class index + 1,
Caltech-256 style; the folder is the *predicted* class, to be corrected by a reviewer) so
``caltech_edge.data.datasets.open_dataset(ROOT)`` reads them straight back for retraining.
Each frame's predictions go to ``ROOT/.predictions/NNN.label/<name>.json`` (a hidden
folder, so dataset readers ignore it). Bounded by count and bytes: when full, new frames
are not saved and ``dropped_full`` counts them.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

import cv2
import numpy as np

from .._io import atomic_write_bytes, atomic_write_text

_NUMBERED = re.compile(r"^\d{3}\.")
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def class_folder(index: int, label: str) -> str:
    """``001.ak47`` style folder for a class (labels already numbered are kept as they are)."""
    label = _UNSAFE.sub("-", str(label)).strip("-.") or "class"
    return label if _NUMBERED.match(label) else "{:03d}.{}".format(int(index) + 1, label)


class RetrainCapture:
    """Saves selected frames + their predictions; bounded by ``max_files``/``max_bytes``."""

    def __init__(
        self,
        root: Union[str, Path],
        *,
        threshold: float = 0.5,
        sample_rate: float = 0.0,
        max_files: int = 1000,
        max_bytes: int = 256 * 1024 * 1024,
        quality: int = 95,
        seed: int = 0,
    ) -> None:
        self.root = Path(root)
        self.threshold = float(threshold)
        self.sample_rate = float(sample_rate)
        self.max_files = int(max_files)
        self.max_bytes = int(max_bytes)
        self.quality = int(quality)
        self._rng = random.Random(seed)
        self.root.mkdir(parents=True, exist_ok=True)
        existing = [p for p in self.root.glob("*/*.jpg") if not p.parent.name.startswith(".")]
        self.files = len(existing)  # counts what earlier runs left, so the bound is global
        self.bytes = sum(p.stat().st_size for p in existing)
        self.saved = 0
        self.dropped_full = 0

    def wants(self, predictions: Sequence[Dict[str, Any]]) -> Optional[str]:
        """Why this frame should be kept ("low_confidence", "sample") or None."""
        best = float(predictions[0]["probability"]) if predictions else 0.0
        if best < self.threshold:
            return "low_confidence"
        if self.sample_rate > 0 and self._rng.random() < self.sample_rate:
            return "sample"
        return None

    def offer(self, frame_bgr: np.ndarray, result: Dict[str, Any], *, name: str) -> Optional[Path]:
        """Save ``frame_bgr`` if it is wanted and fits in the bounds; returns the JPEG path."""
        predictions = result.get("predictions") or []
        reason = self.wants(predictions)
        if reason is None:
            return None
        ok, buf = cv2.imencode(".jpg", frame_bgr, [int(cv2.IMWRITE_JPEG_QUALITY), self.quality])
        if not ok:
            return None
        data = buf.tobytes()
        if self.files + 1 > self.max_files or self.bytes + len(data) > self.max_bytes:
            self.dropped_full += 1
            return None
        top = predictions[0] if predictions else {"index": 0, "label": "unknown"}
        folder = class_folder(top["index"], top["label"])
        stem = _UNSAFE.sub("-", name)
        path = atomic_write_bytes(self.root / folder / (stem + ".jpg"), data)
        meta = {"reason": reason, "image": "{}/{}.jpg".format(folder, stem)}
        meta.update({k: result[k] for k in ("predictions", "model", "timestamp") if k in result})
        atomic_write_text(
            self.root / ".predictions" / folder / (stem + ".json"), json.dumps(meta, indent=1)
        )
        self.files += 1
        self.bytes += len(data)
        self.saved += 1
        return path

    def stats(self) -> Dict[str, Any]:
        return {
            "root": str(self.root),
            "saved": self.saved,
            "files": self.files,
            "bytes": self.bytes,
            "dropped_full": self.dropped_full,
        }
