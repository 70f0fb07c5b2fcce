"""Runs tests/gluon (which import mxnet directly) inside the mxnet toolchain's interpreter,
so the core suite covers them although mxnet cannot be imported here."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from caltech_edge.toolchains.client import source_path
from caltech_edge.toolchains.env import ensure, env_python
from caltech_edge.toolchains.table import get_toolchain

TESTS = Path(__file__).resolve().parents[1]


def test_the_gluon_suite_passes_inside_the_mxnet_toolchain(tmp_path: Path) -> None:
    python = ensure(get_toolchain("mxnet"))  # prepared by `make test`; else a clear error
    assert env_python(python.parents[1]) == python
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(PYTHONPATH=str(source_path()), PYTHONNOUSERSITE="1")
    proc = subprocess.run(
        [str(python), "-m", "pytest", str(TESTS / "gluon"), "-q", "-p", "no:cacheprovider",
         "--timeout", "900", "--basetemp", str(tmp_path / "t"), "-W", "ignore"],
        cwd=str(TESTS.parent), env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    tail = (proc.stdout + proc.stderr)[-4000:]
    assert proc.returncode == 0, tail
    summary = proc.stdout.strip().splitlines()[-1]
    # (the one skip allowed: the torch-threads check, where torch shares mxnet's environment)
    assert " passed" in summary and "failed" not in summary and "error" not in summary, tail
