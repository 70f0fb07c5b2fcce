"""What survives a device restart: the active model, its predecessor, and finished jobs.

``STATE/deploy/active.json`` names the live model (path, hash, job) and the one before it,
and whether the live one is still on probation. A process that dies while a model is on
probation did not shut down cleanly (``clean`` false): on restart that model is treated as
the cause and the previous one comes back. Written atomically on every change.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional

from .._io import atomic_write_json

Meta = Dict[str, Any]


class DeployState:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.active_file = self.root / "active.json"
        self.jobs_file = self.root / "jobs.json"
        self.active: Dict[str, Any] = self._read(self.active_file) or {}
        self.jobs: Dict[str, Any] = self._read(self.jobs_file) or {}

    @staticmethod
    def _read(path: Path) -> Optional[Dict[str, Any]]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def models_dir(self, sha256: str) -> Path:
        return self.root / "models" / sha256[:16]

    def set_active(self, current: Meta, previous: Optional[Meta], *, probation: bool) -> None:
        self.active = {
            "current": current,
            "previous": previous,
            "probation": bool(probation),
            "clean": False,
        }
        atomic_write_json(self.active_file, self.active)

    def end_probation(self, passed: bool) -> None:
        if not self.active:
            return
        if not passed and self.active.get("previous"):
            self.active["current"] = self.active["previous"]
            self.active["previous"] = None
        self.active["probation"] = False
        atomic_write_json(self.active_file, self.active)

    def mark_clean(self, clean: bool) -> None:
        if self.active:
            self.active["clean"] = bool(clean)
            atomic_write_json(self.active_file, self.active)

    def record_job(self, job_id: str, status: str, reason: str) -> None:
        self.jobs[job_id] = {"status": status, "reason": reason}
        atomic_write_json(self.jobs_file, self.jobs)

    def job_status(self, job_id: str) -> Optional[str]:
        entry = self.jobs.get(job_id)
        return entry.get("status") if isinstance(entry, dict) else None
