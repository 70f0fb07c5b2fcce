"""The model card: round-trips, validation and the class-name file formats."""

from __future__ import annotations

import json

import pytest

from caltech_edge.card import ModelCard, card_for, read_class_names, sidecar_path, write_class_names
from caltech_edge.data.transforms import PreprocessSpec
from caltech_edge.errors import ModelCardError


def _card(**kw) -> ModelCard:
    base = dict(arch="resnet18", class_names=("001.ak47", "002.american-flag"))
    base.update(kw)
    return ModelCard(**base)


def test_round_trip_through_json_file(tmp_path):
    card = _card(preprocess=PreprocessSpec(image_size=64), precision="fp16", extra={"k": 1})
    path = card.save(tmp_path)
    assert path.name == "card.json"
    loaded = ModelCard.load(tmp_path)
    assert loaded == card
    assert loaded.preprocess.resize_size == 73  # round(64 / 0.875)
    assert loaded.input_shape == (1, 3, 64, 64)
    assert loaded.num_classes == 2


def test_name_defaults_to_arch_and_replace_is_a_copy():
    card = _card()
    assert card.name == "resnet18"
    other = card.replace(format="onnx")
    assert other.format == "onnx" and card.format == "checkpoint"


def test_newer_schema_and_missing_fields_are_clear_errors(tmp_path):
    with pytest.raises(ModelCardError, match="upgrade caltech-edge"):
        ModelCard.from_dict({**_card().to_dict(), "schema_version": 99})
    bad = tmp_path / "card.json"
    bad.write_text(json.dumps({"arch": "resnet18"}))
    with pytest.raises(ModelCardError, match="lacks class_names"):
        ModelCard.load(bad)
    bad.write_text("{not json")
    with pytest.raises(ModelCardError, match="not valid JSON"):
        ModelCard.load(bad)
    with pytest.raises(ModelCardError, match="no model card found"):
        ModelCard.load(tmp_path / "missing")


def test_sidecar_and_card_for(tmp_path):
    artifact = tmp_path / "model.xml"
    artifact.write_text("<net/>")
    assert sidecar_path(artifact) == tmp_path / "model.card.json"
    with pytest.raises(ModelCardError, match="no model card beside it"):
        card_for(artifact)
    _card().save(sidecar_path(artifact))
    assert card_for(artifact).arch == "resnet18"


def test_class_names_plain_and_indexed(tmp_path):
    plain = tmp_path / "plain.txt"
    write_class_names(plain, ["a", "b", "c"])
    assert read_class_names(plain) == ("a", "b", "c")
    indexed = tmp_path / "indexed.txt"
    indexed.write_text("1\tb\n0\ta\n2\tc\n")
    assert read_class_names(indexed) == ("a", "b", "c")
    gap = tmp_path / "gap.txt"
    gap.write_text("0\ta\n2\tc\n")
    with pytest.raises(ModelCardError, match="consecutive"):
        read_class_names(gap)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(ModelCardError, match="no class names"):
        read_class_names(empty)
