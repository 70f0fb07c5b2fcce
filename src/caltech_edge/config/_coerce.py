"""Value coercion shared by the config classes: strings from files and command lines in,
typed values out, or a ConfigError that names the key and the valid values."""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..errors import ConfigError


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(name), list(valid), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def bad_key(key: str, valid: Iterable[str], where: str) -> ConfigError:
    valid = sorted(valid)
    return ConfigError(
        f"Unknown {where} key {key!r}.{did_you_mean(key, valid)} Valid keys: {', '.join(valid)}."
    )


_TRUE = {"1", "true", "yes", "on", "t", "y"}
_FALSE = {"0", "false", "no", "off", "f", "n", ""}


def to_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{name} must be a boolean (true/false, 1/0), got {value!r}")


def to_int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, int):
        return value
    try:
        number = float(str(value).strip())
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {value!r}") from None
    if not number.is_integer():
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    return int(number)


def to_float(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    try:
        return float(str(value).strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None


def to_enum(value: Any, enum: type[StrEnum], name: str) -> StrEnum:
    text = str(value.value if isinstance(value, StrEnum) else value).strip().lower()
    valid = [m.value for m in enum]
    if text not in valid:
        raise ConfigError(
            f"Unknown {name} {value!r}.{did_you_mean(text, valid)} Valid values: {', '.join(valid)}."
        )
    return enum(text)


def to_int_tuple(value: Any, name: str) -> tuple[int, ...]:
    if value is None or value == "":
        return ()
    items = value if isinstance(value, list | tuple) else str(value).replace(" ", "").split(",")
    return tuple(to_int(v, name) for v in items if v != "")


def coerce(value: Any, hint: Any, name: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        if value is None or (
            isinstance(value, str) and value.strip().lower() in ("", "none", "null")
        ):
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is bool:
        return to_bool(value, name)
    if hint is int:
        return to_int(value, name)
    if hint is float:
        return to_float(value, name)
    if hint is str:
        if not isinstance(value, str | Path):
            raise ConfigError(f"{name} must be a string, got {value!r}")
        return str(value)
    if isinstance(hint, type) and issubclass(hint, StrEnum):
        return to_enum(value, hint, name)
    if origin is tuple and args[:1] == (int,):
        return to_int_tuple(value, name)
    if origin is tuple:
        if isinstance(value, str):
            return (value,)
        return tuple(str(v) for v in value)
    if isinstance(hint, type) and hasattr(hint, "coerce_value"):  # nested config
        return hint.coerce_value(value, name)
    return value  # pragma: no cover


def coerce_fields(obj: Any, prefix: str) -> None:
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        object.__setattr__(obj, f.name, coerce(value, hints[f.name], prefix + f.name))


def plain(value: Any) -> Any:
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return value
