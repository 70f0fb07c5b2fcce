"""The resolved settings of one ``tune`` invocation, written to ``OUT/tune.json``.

Worker processes read everything from this file, so they need no arguments but its path,
and the file doubles as a record of what was searched and how.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._io import atomic_write_json
from ..config import TrainConfig
from .space import SearchSpace


@dataclass(frozen=True)
class TuneSpec:
    data: str
    out: str
    space: SearchSpace
    base: TrainConfig  # static hyperparameters every trial starts from
    storage: str  # journal file path or RDB URL
    study: str
    trials: int  # finished (complete + pruned) trials the study should end with
    workers: int
    pruner: str
    cache: bool  # head-only: trials train on cached backbone features
    cache_reason: str
    threads: int  # torch threads per worker (0 = torch's default)
    seed: int | None  # sampler seed base; None when joining/resuming a study

    @property
    def feature_dir(self) -> Path:
        return Path(self.out) / "features"

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["space"] = self.space.to_dict()
        out["base"] = self.base.to_dict()
        return out

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> TuneSpec:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        data["space"] = SearchSpace.from_dict(data["space"])
        data["base"] = TrainConfig.from_dict(data["base"])
        return cls(**data)
