"""The model card: the small JSON that travels with every artifact.

Each stage (train, compress, export, package, runtime) reads the card the previous stage
wrote, so no stage needs the process that produced its input. Inside ONNX it is stored in
``metadata_props``, inside OpenVINO IR in ``rt_info``, beside MXNet files as a sidecar.
Python 3.8-compatible: the device runtime reads it.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

from ._io import atomic_write_text
from .data.transforms import PreprocessSpec
from .errors import ModelCardError

SCHEMA_VERSION = 1
CARD_FILENAME = "card.json"
METADATA_KEY = "caltech_edge.card"  # key in ONNX metadata_props / OpenVINO rt_info


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class ModelCard:
    """What a consumer needs to run an artifact without this library's training code."""

    arch: str
    class_names: Tuple[str, ...]
    preprocess: PreprocessSpec = field(default_factory=PreprocessSpec)
    framework: str = "torch"  # framework that produced the weights: torch | gluon
    format: str = "checkpoint"  # format of the artifact this card describes
    precision: str = "fp32"  # fp32 | fp16 | int8
    name: str = ""  # human model name; defaults to arch
    version: str = "1"
    source_sha256: str = ""  # hash of the checkpoint this artifact was made from
    input_name: str = "data"
    dataset: str = ""
    created: str = field(default_factory=_now)
    metrics: Dict[str, Any] = field(default_factory=dict)
    extra: Dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.class_names)
        if not names:
            raise ModelCardError("a model card needs at least one class name")
        object.__setattr__(self, "class_names", names)
        if isinstance(self.preprocess, dict):
            object.__setattr__(self, "preprocess", PreprocessSpec.from_dict(self.preprocess))
        if not self.name:
            object.__setattr__(self, "name", self.arch)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> Tuple[int, int, int, int]:
        return self.preprocess.input_shape

    def replace(self, **changes: Any) -> "ModelCard":
        """A copy with ``changes`` applied (cards are immutable)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> Dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["class_names"] = list(self.class_names)
        out["preprocess"] = self.preprocess.to_dict()
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: Dict[str, Any], source: str = "<dict>") -> "ModelCard":
        if not isinstance(data, dict):
            raise ModelCardError("{}: a model card must be a JSON object".format(source))
        version = int(data.get("schema_version", SCHEMA_VERSION))
        if version > SCHEMA_VERSION:
            raise ModelCardError(
                "{}: model card schema {} is newer than this library understands ({}); "
                "upgrade caltech-edge".format(source, version, SCHEMA_VERSION)
            )
        missing = [k for k in ("arch", "class_names") if k not in data]
        if missing:
            raise ModelCardError("{}: model card lacks {}".format(source, ", ".join(missing)))
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["preprocess"] = PreprocessSpec.from_dict(dict(data.get("preprocess") or {}))
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise ModelCardError("{}: invalid model card: {}".format(source, exc)) from exc

    @classmethod
    def from_json(cls, text: str, source: str = "<json>") -> "ModelCard":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ModelCardError("{}: not valid JSON ({})".format(source, exc)) from exc
        return cls.from_dict(data, source)

    def save(self, path: Union[str, Path]) -> Path:
        """Write the card atomically; a directory gets ``card.json`` inside it."""
        path = Path(path)
        if path.is_dir():
            path = path / CARD_FILENAME
        return atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: Union[str, Path]) -> "ModelCard":
        """Read a card from a JSON file, or from ``card.json`` in a directory."""
        path = Path(path)
        if path.is_dir():
            path = path / CARD_FILENAME
        if not path.is_file():
            raise ModelCardError(
                "{}: no model card found; every caltech-edge run and export directory has a "
                "card.json (re-run the stage that made it, or write one with ModelCard.save)".format(
                    path
                )
            )
        return cls.from_json(path.read_text(encoding="utf-8"), str(path))


def sidecar_path(artifact: Union[str, Path]) -> Path:
    """Where the JSON card of a file artifact lives: ``model.xml`` -> ``model.card.json``."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name.split(".")[0] + ".card.json")


def read_class_names(path: Union[str, Path]) -> Tuple[str, ...]:
    """Class names, one per line, optionally ``index<TAB>name`` (then ordered by index)."""
    path = Path(path)
    try:
        lines = [ln.rstrip("\r\n") for ln in path.read_text(encoding="utf-8").splitlines()]
    except OSError as exc:
        raise ModelCardError("{}: cannot read class names ({})".format(path, exc)) from exc
    lines = [ln for ln in lines if ln.strip()]
    if not lines:
        raise ModelCardError("{}: no class names found (expected one per line)".format(path))
    if all("\t" in ln for ln in lines):
        pairs = []  # type: list
        for ln in lines:
            idx, _, name = ln.partition("\t")
            try:
                pairs.append((int(idx), name.strip()))
            except ValueError:
                raise ModelCardError("{}: {!r} is not 'index<TAB>name'".format(path, ln)) from None
        indices = sorted(i for i, _ in pairs)
        if indices != list(range(indices[0], indices[0] + len(indices))):
            raise ModelCardError("{}: class indices must be consecutive".format(path))
        return tuple(name for _, name in sorted(pairs))
    return tuple(ln.strip() for ln in lines)


def write_class_names(path: Union[str, Path], names: Sequence[str]) -> Path:
    return atomic_write_text(path, "".join("{}\n".format(n) for n in names))


def card_for(artifact: Union[str, Path], card: Optional[ModelCard] = None) -> ModelCard:
    """The card of ``artifact``: an explicit one, its sidecar, or card.json in its folder."""
    if card is not None:
        return card
    artifact = Path(artifact)
    for candidate in (sidecar_path(artifact), artifact.parent / CARD_FILENAME, artifact):
        if candidate.is_file() and candidate.suffix == ".json":
            return ModelCard.load(candidate)
        if candidate.is_dir() and (candidate / CARD_FILENAME).is_file():
            return ModelCard.load(candidate)
    raise ModelCardError(
        "{}: no model card beside it (looked for {} and {})".format(
            artifact, sidecar_path(artifact).name, CARD_FILENAME
        )
    )
