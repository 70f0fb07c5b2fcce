"""Small pieces every CLI module shares."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def print_json(obj: Any) -> None:
    """One JSON document on stdout (paths and tuples made serialisable)."""
    json.dump(obj, sys.stdout, indent=2, default=_default)
    sys.stdout.write("\n")


def _default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
