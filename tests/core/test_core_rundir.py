"""Run directories rebuild their torch model from files alone."""

from __future__ import annotations

import pytest
import torch

from caltech_edge.card import ModelCard
from caltech_edge.data.transforms import PreprocessSpec
from caltech_edge.errors import CheckpointError
from caltech_edge.models import create_model
from caltech_edge.rundir import RunDir, load_torch_model


def test_load_torch_model_from_run(tmp_path):
    run = RunDir(tmp_path)
    model = create_model("squeezenet1_1", 3, weights=None).eval()
    card = ModelCard(
        arch="squeezenet1_1", class_names=("a", "b", "c"), preprocess=PreprocessSpec(image_size=64)
    )
    card.save(run.card)
    with pytest.raises(CheckpointError, match="no weights"):
        load_torch_model(run)
    torch.save(model.state_dict(), run.weights)
    assert run.is_run()
    loaded, loaded_card = load_torch_model(tmp_path)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    assert loaded_card == card
    card.replace(framework="gluon").save(run.card)
    with pytest.raises(CheckpointError, match="trained with 'gluon'"):
        load_torch_model(run)
