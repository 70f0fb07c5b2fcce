"""The accuracy-aware recipe search (compress/recipes.py) on real ONNX artifacts.

A tiny real producer degrades the fitted model's classifier by a known amount per recipe,
so the test controls which recipes meet the agreement target; the real ONNX Runtime and
OpenVINO back ends then run through the same search with their declared recipes.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from caltech_edge.compress.recipes import (
    QuantizationWarning,
    QuantizerSpec,
    Recipe,
    search_recipes,
    split_holdout,
)


def _noisy_copy(src: Path, dst: Path, *, calibration, card=None, noise: float = 0.0) -> Path:
    """A real 'quantizer' whose damage is known: noise added to every float initializer."""
    import onnx
    from onnx import numpy_helper

    from caltech_edge.compress._artifact import derived_card, save_onnx_with_card, source_card

    assert calibration.count > 0  # the search hands over the calibration part only
    model = onnx.load(str(src))
    rng = np.random.default_rng(0)
    for init in model.graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype == np.float32 and arr.size > 1:
            scale = noise * (np.abs(arr).mean() + 1e-6)
            init.CopyFrom(
                numpy_helper.from_array(
                    arr + scale * rng.standard_normal(arr.shape).astype(np.float32), init.name
                )
            )
    base = derived_card(source_card(src, card), src, precision="int8", fmt="onnx")
    return save_onnx_with_card(model, dst, base)


def _restamp(path: Path, card) -> None:
    from caltech_edge.compress.onnx_int8 import restamp_onnx

    restamp_onnx(path, card)


SPEC = QuantizerSpec(
    "noisy",
    _noisy_copy,
    (Recipe("wrecked", {"noise": 50.0}), Recipe("exact", {"noise": 0.0})),
    restamp=_restamp,
)


def test_holdout_is_every_kth_image_and_the_rest_calibrates(tiny_calibration):
    calib, held = split_holdout(tiny_calibration, 1 / 3)
    assert len(held) == tiny_calibration.count // 3
    assert calib.count + len(held) == tiny_calibration.count
    assert held.shape[1:] == next(iter(tiny_calibration)).shape[1:]


def test_search_keeps_the_first_recipe_that_reaches_the_target(
    tiny_exports, tiny_calibration, tmp_path
):
    from caltech_edge.export.onnx import read_onnx_card

    dst = tmp_path / "q" / "model.onnx"
    result = search_recipes(SPEC, tiny_exports["onnx"], dst, calibration=tiny_calibration)
    assert result.recipe.name == "exact" and result.met and result.agreement == 1.0
    assert [t.recipe.name for t in result.trials] == ["wrecked", "exact"]
    assert result.trials[0].agreement < 0.9
    embedded = read_onnx_card(dst).extra["quantization"]
    assert embedded["recipe"] == "exact" and embedded["agreement"] == 1.0
    assert embedded["kept_because"] == "the first recipe to reach the target"
    assert [t["recipe"] for t in embedded["recipes_tried"]] == ["wrecked", "exact"]
    assert sorted(p.name for p in dst.parent.iterdir()) == ["model.card.json", "model.onnx"]


def test_unreachable_target_keeps_the_best_with_a_warning_giving_numbers(
    tiny_exports, tiny_calibration, tmp_path
):
    recipes = (Recipe("wrecked", {"noise": 50.0}), Recipe("bruised", {"noise": 0.3}))
    with pytest.warns(QuantizationWarning, match=r"kept 'bruised' at \d+\.\d%.*wrecked \d+\.\d%"):
        result = search_recipes(
            SPEC, tiny_exports["onnx"], tmp_path / "model.onnx",
            calibration=tiny_calibration, target=1.0, recipes=recipes,
        )  # fmt: skip
    assert not result.met and result.recipe.name == "bruised"
    assert result.agreement == max(t.agreement for t in result.trials)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_real_back_ends_search_their_recipes_and_record_them(
    backend, tiny_exports, tiny_calibration, tmp_path
):
    from caltech_edge.compress._artifact import source_card
    from caltech_edge.compress.quantize import quantize, quantizer_spec

    src = tiny_exports["onnx" if backend == "onnxruntime" else "openvino"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QuantizationWarning)
        out = quantize(src, out=tmp_path, backend=backend, calibration=tiny_calibration, target=0.5)
    quant = source_card(out).extra["quantization"]
    first = quantizer_spec(backend).recipes[0].name
    assert quant["recipe"] == first  # 50% agreement: the first recipe must do
    assert quant["agreement"] >= 0.5 and quant["calibration_images"] < tiny_calibration.count
    assert len(quant["recipes_tried"]) == 1


def test_agreements_one_image_apart_tie_and_the_closest_logits_win():
    from caltech_edge.compress.recipes import Trial, best_trial

    def trial(name, agreement, error):
        return Trial(Recipe(name), agreement, 1.0, logit_error=error)

    trials = [
        trial("first", 0.98, 5e-4),
        trial("closest", 0.96, 4e-4),  # one image of 50 behind: a tie on 50 images
        trial("far-behind", 0.90, 1e-4),  # 4 images behind: agreement decides
        Trial(Recipe("failed"), None, 1.0, "boom"),
    ]
    assert best_trial(trials, 50).recipe.name == "closest"
    assert best_trial(trials, 1000).recipe.name == "first"  # 2 points is 20 images of 1000
    assert best_trial([trials[0], trial("same", 0.98, 5e-4)], 50).recipe.name == "first"


def test_an_earlier_recipe_with_closer_logits_wins_when_the_images_cannot_tell():
    """47 vs 49 of 50 held-out images (both wrong on the same one) is no evidence; the
    continuous logit error decides. Many more flips, or farther logits, and it does not."""
    from caltech_edge.compress.trials import Trial, indistinguishable, settle

    def trial(name, wrong, error):
        agrees = tuple(i not in wrong for i in range(50))
        return Trial(Recipe(name), sum(agrees) / 50, 1.0, logit_error=error, agrees=agrees)

    early = trial("bias-corrected", {0, 1, 2}, 6.6e-4)
    late = trial("plain", {0}, 1.1e-3)
    assert indistinguishable(early, late)  # 2 discordant images: p = 0.5
    assert settle(late, [early, late]) is early
    wrecked = trial("wrecked", set(range(10)), 1e-4)  # 9 discordant, all one way: p = 0.004
    assert not indistinguishable(wrecked, late)
    assert settle(late, [wrecked, late]) is late
    assert settle(late, [trial("noisier", {0, 1, 2}, 2e-3), late]) is late
    unscored = Trial(Recipe("old"), 0.94, 1.0, logit_error=1e-4)  # no per-image record
    assert settle(late, [unscored, late]) is late
