"""Toolchains: isolated, cached environments for converters that cannot share the core.

* :mod:`.table`: the registry (:data:`TOOLCHAINS`) -- name, requirements, what needs it;
* :mod:`.env`: where environments live, building one (uv, else venv + pip), doctor data;
* :mod:`.protocol` / :mod:`.worker` / :mod:`.client`: JSON lines over a subprocess;
* :mod:`.runtime`: a Runtime whose model runs in a toolchain (MXNet artifacts in the core).

:func:`run` is what the rest of the library calls: in-process when the toolchain's module
imports here (a DeepLens image with mxnet), else in the toolchain's worker.
"""

from __future__ import annotations

from typing import Any

from .._registry import lazy_getattr

__all__ = ["TOOLCHAINS", "Toolchain", "get_toolchain", "needs_toolchain", "run"]

__getattr__ = lazy_getattr(
    __name__,
    {
        "TOOLCHAINS": "caltech_edge.toolchains.table",
        "Toolchain": "caltech_edge.toolchains.table",
        "get_toolchain": "caltech_edge.toolchains.table",
    },
)


def needs_toolchain(name: str) -> bool:
    """Whether work for toolchain ``name`` must go to its environment (not importable here)."""
    from .table import get_toolchain

    return not get_toolchain(name).in_process()


def run(toolchain: str, target: str, **kwargs: Any) -> Any:
    """``target(**kwargs)`` here when the toolchain's module imports, else in its worker.

    ``target`` is a ``"caltech_edge.module:function"`` taking and returning JSON-friendly
    values (paths as strings, dicts, numpy arrays), so both routes behave the same.
    """
    if not needs_toolchain(toolchain):
        from .worker import resolve

        return resolve(target)(**kwargs)
    from .client import call

    return call(toolchain, target, **kwargs)
