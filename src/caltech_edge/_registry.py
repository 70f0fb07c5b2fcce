"""One small lazy registry per axis (framework, export format, runtime backend).

Entries point at ``"module:object"`` strings so registering a backend never imports its
framework: the device runtime must import without torch or mxnet installed.
This module stays Python 3.8-compatible.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, Tuple

from .errors import MissingDependencyError, UnknownNameError


def require(module: str, extra: str, purpose: str = "") -> Any:
    """Import an optional dependency or raise an error naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        if exc.name is not None and exc.name.split(".")[0] != top:
            raise  # the package is there but one of *its* imports failed: show that
        raise MissingDependencyError(module, extra, purpose or None) from exc


def lazy_getattr(package: str, exports: Dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562) importing each public name from its module on first use.

    Packages expose their API this way so that importing them costs nothing and pulls in no
    framework: the device runtime must import without torch or mxnet.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError("module {!r} has no attribute {!r}".format(package, name))
        return getattr(importlib.import_module(module), name)

    return __getattr__


def available(module: str) -> bool:
    """Whether ``module`` could be imported, without importing it.

    Checking an entry's requirements must not import them: importing mxnet, for one, drops
    torch to a single thread unless the backend's own import wrapper restores it.
    """
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package is missing
        return False


@dataclass(frozen=True)
class Entry:
    name: str
    target: str  # "package.module:object"
    requires: Tuple[str, ...] = ()  # importable modules needed, checked before importing target
    extra: str = ""  # the pip extra that provides `requires`
    info: Dict[str, Any] = field(default_factory=dict)

    def load(self) -> Any:
        for module in self.requires:
            if not available(module):
                raise MissingDependencyError(module, self.extra or module, "{!r}".format(self.name))
        module_name, _, attr = self.target.partition(":")
        obj = importlib.import_module(module_name)
        for part in attr.split(".") if attr else ():
            obj = getattr(obj, part)
        return obj


class Registry:
    """Maps names to lazily imported objects; unknown names get a did-you-mean error."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries = {}  # type: Dict[str, Entry]

    def register(
        self,
        name: str,
        target: str,
        *,
        requires: Tuple[str, ...] = (),
        extra: str = "",
        **info: Any,
    ) -> None:
        if name in self._entries:
            raise ValueError("{} {!r} is already registered".format(self.kind, name))
        self._entries[name] = Entry(name, target, tuple(requires), extra, dict(info))

    def entry(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self._entries) from None

    def get(self, name: str) -> Any:
        return self.entry(name).load()

    def names(self) -> Tuple[str, ...]:
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries.values())
