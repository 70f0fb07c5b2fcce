"""The lazy registry, optional-dependency errors and atomic writes."""

from __future__ import annotations

import os

import pytest

from caltech_edge._io import atomic_write_json, atomic_write_text, sha256_file
from caltech_edge._registry import Registry, require
from caltech_edge.errors import MissingDependencyError, UnknownNameError


def test_registry_lazy_get_and_did_you_mean():
    reg = Registry("backend")
    reg.register("json-dumps", "json:dumps", kind="text")
    reg.register("needs-missing", "json:dumps", requires=("no_such_module_xyz",), extra="demo")
    assert reg.names() == ("json-dumps", "needs-missing")
    assert reg.get("json-dumps")({"a": 1}) == '{"a": 1}'
    assert reg.entry("json-dumps").info == {"kind": "text"}
    with pytest.raises(UnknownNameError, match="Did you mean 'json-dumps'") as err:
        reg.get("json-dump")
    assert isinstance(err.value, ValueError)
    with pytest.raises(MissingDependencyError, match=r'pip install "caltech-edge\[demo\]"'):
        reg.get("needs-missing")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("json-dumps", "json:loads")


def test_require_names_the_extra():
    assert require("json", "core").dumps is not None
    with pytest.raises(MissingDependencyError) as err:
        require("no_such_module_xyz.sub", "openvino")
    assert isinstance(err.value, ImportError)
    assert "caltech-edge[openvino]" in str(err.value)


def test_atomic_write_leaves_no_partial_file_on_failure(tmp_path):
    target = tmp_path / "sub" / "state.json"
    atomic_write_json(target, {"epoch": 1})
    assert target.read_text().startswith("{")

    def boom(fh):
        fh.write(b"half")
        raise RuntimeError("killed mid-write")

    from caltech_edge._io import atomic_write

    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    assert '"epoch": 1' in target.read_text()  # the old file is intact
    assert [p.name for p in target.parent.iterdir()] == ["state.json"]  # no temp file left


def test_sha256_file(tmp_path):
    path = atomic_write_text(tmp_path / "a.txt", "abc")
    assert sha256_file(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert os.path.getsize(path) == 3


def test_atomic_write_gives_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "model.card.json", "{}")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644  # readable by the device's other users


def test_checking_requirements_does_not_import_them():
    import sys

    reg = Registry("framework")
    reg.register("stdlib", "json:dumps", requires=("xml.dom.minidom",), extra="none")
    sys.modules.pop("xml.dom.minidom", None)
    reg.get("stdlib")
    assert "xml.dom.minidom" not in sys.modules


def test_formats_sit_on_the_registry_and_quantizers_derive_from_their_int8_rows():
    from caltech_edge.cli import build_parser
    from caltech_edge.compress.quantize import QUANTIZERS
    from caltech_edge.export.formats import FORMAT_REGISTRY, FORMATS, get_format, quantizer_rows

    # one row per registry entry, same order; unknown names get the registry's did-you-mean
    assert tuple(FORMATS) == FORMAT_REGISTRY.names()
    assert all(FORMAT_REGISTRY.entry(n).target == row.producer for n, row in FORMATS.items())
    with pytest.raises(UnknownNameError, match="Did you mean 'tflite-int8'"):
        get_format("tflite-int")
    # every quantization back end produces exactly one INT8 row, and the rows name no other
    rows = quantizer_rows()
    assert set(rows) == set(QUANTIZERS.names())
    assert all(row.precision == "int8" and row.made_from in FORMATS for row in rows.values())
    # the quantize CLI offers exactly those back ends
    quantize = build_parser()._subparsers._group_actions[0].choices["quantize"]  # type: ignore[union-attr]
    backend = next(a for a in quantize._actions if a.dest == "backend")
    assert sorted(backend.choices) == sorted(QUANTIZERS.names())
