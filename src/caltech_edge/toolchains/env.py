"""Where toolchain environments live, and building one (uv when present, else venv + pip).

Each environment sits in the user cache, keyed by what decides its contents::

    $XDG_CACHE_HOME/caltech-edge/toolchains/mxnet-<hash>/      (~/.cache/... by default)
        bin/python ...                 the virtual environment
        toolchain.json                 requirements, installed versions, build time

The hash covers the requirements, this package's version and the Python version, so a change
to any of them makes a new environment and leaves the old one "stale" (``toolchain doctor``
lists it, ``toolchain clean`` removes it). A build runs under a file lock (two processes never
build the same environment at once) and marks the environment ready (``toolchain.json``)
only at the very end: a crash leaves no half-built environment that looks usable.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import ToolchainError
from .table import Toolchain

log = logging.getLogger(__name__)

#: "0" forbids building an environment on first need (tests, CI): prepare them explicitly
AUTO_INSTALL_ENV = "CALTECH_EDGE_TOOLCHAIN_AUTO_INSTALL"
#: overrides the cache root (default: $XDG_CACHE_HOME/caltech-edge/toolchains)
HOME_ENV = "CALTECH_EDGE_TOOLCHAIN_HOME"
#: "pip" forces the venv + pip builder even where uv is installed
BUILDER_ENV = "CALTECH_EDGE_TOOLCHAIN_BUILDER"
MARKER = "toolchain.json"


def cache_root() -> Path:
    """The folder holding every toolchain environment of this user."""
    explicit = os.environ.get(HOME_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "caltech-edge" / "toolchains"


def env_key(tc: Toolchain) -> str:
    """A short hash of everything that decides the environment's contents."""
    python = "{}.{}".format(*sys.version_info[:2])
    text = "\n".join([*sorted(tc.requirements), __version__, python])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def env_dir(tc: Toolchain) -> Path:
    return cache_root() / f"{tc.name}-{env_key(tc)}"


def env_python(env: Path) -> Path:
    return env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


@dataclass(frozen=True)
class EnvStatus:
    """What ``toolchain doctor`` reports for one toolchain."""

    name: str
    path: Path
    ready: bool  # built completely for the current requirements/version/python
    versions: dict[str, str]
    size_bytes: int
    built: str
    build_seconds: float | None
    stale: list[Path]  # older environments of this toolchain (other keys)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "ready": self.ready,
            "versions": self.versions,
            "size_mb": round(self.size_bytes / 1e6, 1),
            "built": self.built,
            "build_seconds": self.build_seconds,
            "stale": [str(p) for p in self.stale],
        }


def _size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(str(path)):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def read_marker(env: Path) -> dict[str, Any] | None:
    try:
        return json.loads((env / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def status(tc: Toolchain, *, sizes: bool = True) -> EnvStatus:
    env = env_dir(tc)
    marker = read_marker(env)
    ready = marker is not None and env_python(env).exists()
    stale = sorted(
        p for p in cache_root().glob(tc.name + "-*") if p.is_dir() and p.name != env.name
    )
    return EnvStatus(
        name=tc.name,
        path=env,
        ready=ready,
        versions=dict(marker.get("versions", {})) if marker else {},
        size_bytes=_size(env) if ready and sizes else 0,
        built=str(marker.get("built", "")) if marker else "",
        build_seconds=marker.get("build_seconds") if marker else None,
        stale=stale,
    )


def _install_hint(tc: Toolchain) -> str:
    return f"caltech-edge toolchain install {tc.name}"


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (waits for a build another process runs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(str(path), "a+") as handle:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no concurrent-build protection
            yield
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def find_uv() -> str | None:
    """``uv`` on PATH or beside this interpreter (it is a dev dependency of the core venv).

    ``CALTECH_EDGE_TOOLCHAIN_BUILDER=pip`` ignores uv (the venv + pip route).
    """
    if os.environ.get(BUILDER_ENV, "").strip().lower() == "pip":
        return None
    found = shutil.which("uv")
    if found:
        return found
    beside = Path(sys.executable).with_name("uv.exe" if os.name == "nt" else "uv")
    return str(beside) if beside.is_file() else None


def _run(cmd: list[str], tc: Toolchain, quiet: bool) -> None:
    log.debug("toolchain %s: %s", tc.name, " ".join(cmd))
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if not quiet and proc.stdout:
        sys.stderr.write(proc.stdout)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stdout or "").splitlines() if ln.strip()]
        errs = [ln for ln in lines if ln.lower().startswith(("error", "×", "╰─▶", "because"))]
        last = (errs or lines)[-1:] or ["?"]
        raise ToolchainError(
            f"cannot build toolchain {tc.name!r} ({Path(cmd[0]).name}: {last[0]}); check network access to the package "
            f"registry, then run: {_install_hint(tc)}"
        )


def _create(tc: Toolchain, target: Path, quiet: bool) -> str:
    uv = find_uv()
    if uv:
        _run([uv, "venv", "--quiet", "--python", sys.executable, str(target)], tc, quiet)
        python = str(env_python(target))
        if tc.requirements:
            _run([uv, "pip", "install", "--python", python, *tc.requirements], tc, quiet)
        return "uv"
    _run([sys.executable, "-m", "venv", str(target)], tc, quiet)
    python = str(env_python(target))
    if tc.requirements:
        _run([python, "-m", "pip", "install", "-q", "--upgrade", "pip"], tc, quiet)
        _run([python, "-m", "pip", "install", "-q", *tc.requirements], tc, quiet)
    return "pip"


_VERSIONS = (
    "import json, importlib.metadata as m, sys\n"
    "out = {'python': sys.version.split()[0]}\n"
    "for d in sys.argv[1:]:\n"
    "    try: out[d] = m.version(d)\n"
    "    except Exception: pass\n"
    "print(json.dumps(out))\n"
)


def _installed_versions(python: str, tc: Toolchain) -> dict[str, str]:
    names = [
        r.split(";")[0].split("[")[0].split("=")[0].split("<")[0].split(">")[0].strip()
        for r in tc.requirements
    ]
    out = subprocess.run([python, "-c", _VERSIONS, *names], stdout=subprocess.PIPE, text=True)
    try:
        return json.loads(out.stdout)
    except ValueError:
        return {}


def build(tc: Toolchain, *, force: bool = False, quiet: bool = False) -> Path:
    """Create the environment of ``tc`` (no-op when it is ready); returns its folder."""
    env = env_dir(tc)
    with _lock(cache_root() / f".{tc.name}.lock"):
        if not force and status(tc, sizes=False).ready:
            return env
        shutil.rmtree(str(env), ignore_errors=True)  # a half-built one (no marker)
        started = time.perf_counter()
        log.info("building toolchain %s in %s (one time)", tc.name, env)
        try:
            tool = _create(tc, env, quiet)
            # the import proves the environment works before it is marked ready
            _run([str(env_python(env)), "-c", "import " + tc.provides], tc, quiet=True)
        except BaseException:
            shutil.rmtree(str(env), ignore_errors=True)
            raise
        seconds = round(time.perf_counter() - started, 1)
        marker = {
            "name": tc.name,
            "requirements": list(tc.requirements),
            "caltech_edge": __version__,
            "versions": _installed_versions(str(env_python(env)), tc),
            "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "build_seconds": seconds,
            "built_with": tool,
        }
        # the marker is written last, atomically: only a complete environment is "ready"
        tmp_marker = env / (MARKER + ".tmp")
        tmp_marker.write_text(json.dumps(marker, indent=2), encoding="utf-8")
        os.replace(str(tmp_marker), str(env / MARKER))
        log.info("toolchain %s ready in %.1f s (%s)", tc.name, seconds, tool)
        return env


def ensure(tc: Toolchain) -> Path:
    """The python of a ready environment, building it first unless that is forbidden."""
    state = status(tc, sizes=False)
    if state.ready:
        return env_python(state.path)
    if os.environ.get(AUTO_INSTALL_ENV, "1").strip().lower() in ("0", "false", "no"):
        raise ToolchainError(
            f"toolchain {tc.name!r} is not installed and {AUTO_INSTALL_ENV}=0 forbids building it here; run: {_install_hint(tc)}"
        )
    return env_python(build(tc))


def clean(tc: Toolchain, *, everything: bool = False) -> list[Path]:
    """Remove stale environments of ``tc`` (and the current one with ``everything``)."""
    state = status(tc, sizes=False)
    doomed = list(state.stale) + ([state.path] if everything and state.path.exists() else [])
    for path in doomed:
        shutil.rmtree(str(path), ignore_errors=True)
    return doomed
