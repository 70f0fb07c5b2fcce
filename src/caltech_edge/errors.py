"""Typed exceptions whose messages say what to do next.

Every error a user can cause (bad file, bad name, bad value, missing extra) is one of
these, so a CLI can print it without a traceback and a caller can catch one family.
This module stays Python 3.8-compatible: the device runtime imports it.
"""

from __future__ import annotations

import difflib
from typing import Iterable, Optional


class CaltechEdgeError(Exception):
    """Base class of every error this library raises on purpose."""


class ConfigError(CaltechEdgeError, ValueError):
    """A configuration key or value is invalid; the message lists the valid ones."""


class UnknownNameError(CaltechEdgeError, ValueError):
    """A name (architecture, format, backend, ...) is not one of the registered ones."""

    def __init__(self, kind: str, name: str, valid: Iterable[str]) -> None:
        valid = sorted(valid)
        close = difflib.get_close_matches(str(name), valid, n=1)
        hint = " Did you mean {!r}?".format(close[0]) if close else ""
        super().__init__(
            "Unknown {} {!r}.{} Valid choices: {}.".format(kind, name, hint, ", ".join(valid))
        )
        self.kind, self.name, self.valid = kind, name, valid


class MissingDependencyError(CaltechEdgeError, ImportError):
    """An optional framework is not installed; the message names the extra to install."""

    def __init__(self, module: str, extra: str, purpose: Optional[str] = None) -> None:
        what = " for {}".format(purpose) if purpose else ""
        super().__init__(
            "{!r} is required{} but is not installed. Install it with: "
            'pip install "caltech-edge[{}]"'.format(module, what, extra)
        )
        self.module, self.extra = module, extra


class DatasetError(CaltechEdgeError):
    """A dataset root, split file or image cannot be used as given."""


class CheckpointError(CaltechEdgeError):
    """A checkpoint or weights file is missing, corrupt or for another architecture."""


class WeightsNotFoundError(CheckpointError):
    """Pretrained weights are not in the local cache and may not be downloaded."""


class ExportError(CaltechEdgeError):
    """A model could not be converted to the requested format."""


class VerificationError(ExportError):
    """An exported artifact does not compute what its source computes within tolerance."""


class ModelCardError(CaltechEdgeError):
    """A model card (the JSON metadata beside every artifact) is missing or invalid."""


class BackendError(CaltechEdgeError):
    """A runtime backend failed to load or run an artifact."""


class ToolchainError(CaltechEdgeError):
    """An isolated toolchain environment is missing, cannot be built, or its worker failed."""


class StateError(CaltechEdgeError):
    """The device's on-disk state (outbox, sequence ids) cannot be written: full disk, permissions."""
