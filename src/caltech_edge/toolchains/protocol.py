"""The JSON-lines protocol between the core and a toolchain worker.

One request per line on the worker's stdin, one reply per line on its stdout::

    -> {"id": 1, "call": "caltech_edge.frameworks.gluon_remote:train", "kwargs": {...}}
    <- {"id": 1, "result": ...}
    <- {"id": 1, "error": {"type": "ConfigError", "message": "...", "traceback": "..."}}

Arguments and results are JSON; numpy arrays travel as base64 ``.npy`` bytes (exact dtype
and shape, no pickle), paths as strings. Everything else the worker prints (logs, tqdm
bars, library chatter) goes to stderr, which the child shares with the core, so progress
passes through unchanged and can never corrupt the reply stream.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import PurePath
from typing import Any

ARRAY_KEY = "__ndarray__"


def _default(obj: Any) -> Any:
    if isinstance(obj, PurePath):
        return str(obj)
    if type(obj).__module__ == "numpy":
        import numpy as np

        if isinstance(obj, np.ndarray):
            buf = io.BytesIO()
            np.save(buf, obj, allow_pickle=False)
            return {ARRAY_KEY: base64.b64encode(buf.getvalue()).decode("ascii")}
        if isinstance(obj, np.generic):
            return obj.item()
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    raise TypeError(f"cannot send {type(obj).__name__} through the toolchain protocol")


def _hook(obj: dict) -> Any:
    if len(obj) == 1 and ARRAY_KEY in obj:
        import numpy as np

        raw = base64.b64decode(obj[ARRAY_KEY].encode("ascii"))
        return np.load(io.BytesIO(raw), allow_pickle=False)
    return obj


def dumps(message: Any) -> str:
    """One protocol line (no newline inside: JSON escapes them)."""
    return json.dumps(message, default=_default, separators=(",", ":"))


def loads(line: str) -> Any:
    return json.loads(line, object_hook=_hook)
