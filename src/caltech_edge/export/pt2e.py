"""PT2E post-training INT8 shared by the LiteRT and ExecuTorch rows, and their recipe search.

Both converters quantize the same way: ``torch.export`` the model, ``prepare_pt2e`` with
the converter's own quantizer (litert-torch's ``PT2EQuantizer`` / ExecuTorch's
``XNNPACKQuantizer``), run the calibration images through the observers, ``convert_pt2e``.
What differs is only the quantizer and how the result is lowered, so each row passes a
``quantizer`` factory here.

Accuracy-aware: the rows declare their recipes (ordered option dicts, best first) and
:func:`search_model_int8` hands them to the recipe search of
:mod:`caltech_edge.compress.recipes`, which keeps the first recipe whose top-1 agreement
with the FP32 torch model on held-out calibration images reaches the target.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..card import ModelCard
from ..errors import ConfigError

# Activation observers a recipe can pick (the weights keep their per-channel min/max).
ACTIVATION_OBSERVERS = ("histogram", "minmax", "moving-average")


def observer_class(name: str) -> Any:
    """The torchao observer class behind a recipe's ``activation_observer`` name."""
    from torchao.quantization.pt2e import observer

    table = {
        "histogram": observer.HistogramObserver,
        "minmax": observer.MinMaxObserver,
        "moving-average": observer.MovingAverageMinMaxObserver,
    }
    if name not in table:
        raise ConfigError(
            f"activation_observer must be one of {', '.join(ACTIVATION_OBSERVERS)}; got {name!r}"
        )
    return table[name]


def with_activation_observer(config: Any, name: str) -> Any:
    """A copy of a PT2E ``QuantizationConfig`` whose activations use observer ``name``."""
    if name == "histogram":
        return config
    ctr = observer_class(name).with_args(eps=2**-12)
    changes = {}
    for field in ("input_activation", "output_activation"):
        spec = getattr(config, field)
        if spec is not None:
            changes[field] = dataclasses.replace(spec, observer_or_fake_quant_ctr=ctr)
    return dataclasses.replace(config, **changes)


def calibrate(prepared: Any, calibration: Any, to_input: Callable[[Any], Any]) -> int:
    """Run every calibration image (one at a time: exports are batch 1) through ``prepared``."""
    import torch

    calibration.rewind()
    seen = 0
    with torch.no_grad():
        for batch in calibration:
            for i in range(len(batch)):
                prepared(to_input(torch.from_numpy(np.ascontiguousarray(batch[i : i + 1]))))
                seen += 1
    if not seen:
        raise ConfigError("the calibration set is empty: pass --data ROOT with training images")
    return seen


def quantize_pt2e(
    module: Any,
    sample: Any,
    quantizer: Any,
    calibration: Any,
    to_input: Callable[[Any], Any],
    *,
    fold_quantize: bool = True,
    float_logits: bool = False,
    own_logit_scale: bool = False,
) -> Any:
    """``module`` (eval) -> converted PT2E graph module with q/dq nodes.

    ``fold_quantize``: store the weights as int8 constants (ExecuTorch's lowering needs
    it); litert-torch wants them unfolded (it quantizes the float weights itself).
    ``float_logits``: no int8 rounding after the last reducing op
    (:mod:`caltech_edge.compress.float_logits`); ``own_logit_scale``: full-integer, but
    the logits calibrate their own int8 scale instead of sharing the pooling input's."""
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    graph = torch.export.export(module.eval(), (sample,)).module()
    prepared = prepare_pt2e(graph, quantizer)
    own_scale = False
    if own_logit_scale:
        from ..compress.float_logits import pt2e_own_logit_scale

        own_scale = pt2e_own_logit_scale(prepared)
    calibrate(prepared, calibration, to_input)
    converted = convert_pt2e(prepared, fold_quantize=fold_quantize)
    # Captured from an eval() module, so the graph's ops already are the eval ones; only
    # the flag of torch.export's module() says "training", and litert-torch warned on it
    # at every conversion. (An exported module's .eval() only rewrites dropout/batchnorm.)
    for sub in converted.modules():
        sub.training = False
    converted.meta["own_logit_scale"] = own_scale  # what the card reports: did it apply?
    if float_logits:
        from ..compress.float_logits import pt2e_float_logits

        pt2e_float_logits(converted)
    return converted


def check_recipe_options(name: str, quantize: Callable[..., Path], options: Any) -> None:
    """Refuse an explicit option ``quantize`` does not take, before any calibration work
    (``--option tflite-int8.io_tpe=uint8`` is a one-line error, not a TypeError later)."""
    from .formats import keyword_options

    accepted, _ = keyword_options(quantize, exclude=("calibration",))
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(
            f"{name} INT8 has no option {unknown[0]!r}; it takes recipe, target, or one "
            f"recipe's settings: {', '.join(accepted)}"
        )


def search_model_int8(
    name: str,
    quantize: Callable[..., Path],
    model: Any,
    card: ModelCard,
    dst: Path,
    *,
    calibration: Any,
    recipes: Sequence[tuple[str, dict[str, Any]]],
    infer: Callable[[Path], Callable[[np.ndarray], np.ndarray]],
    restamp: Callable[[Path, ModelCard], None],
    recipe: str | None = None,
    target: float | None = None,
    **options: Any,
) -> Path:
    """Quantize the torch ``model`` by ``quantize(model, card, dst, calibration=, **opts)``
    through the accuracy-aware recipe search; explicit ``options`` run as one recipe.

    The search's "source" is the torch model itself (FP32 reference logits from
    :func:`~caltech_edge.export.verify.torch_predictor`), so ``dst`` stands in as its
    label in messages.
    """
    from ..compress.recipes import DEFAULT_TARGET, QuantizerSpec, Recipe, search_recipes
    from .verify import torch_predictor

    check_recipe_options(name, quantize, options)

    def produce(_src: Path, out: Path, *, calibration: Any, card: ModelCard | None = None, **kw):
        return quantize(model, card, out, calibration=calibration, **kw)

    spec = QuantizerSpec(
        name,
        produce,
        tuple(Recipe(n, dict(o)) for n, o in recipes),
        infer=infer,
        restamp=restamp,
    )
    if recipe is not None and options:
        raise ConfigError("give either recipe= or explicit quantization options, not both")
    chosen = (spec.recipe(recipe),) if recipe else (Recipe("custom", options),) if options else None
    result = search_recipes(
        spec,
        dst,
        dst,
        calibration=calibration,
        card=card,
        target=DEFAULT_TARGET if target is None else float(target),
        recipes=chosen,
        reference=torch_predictor(model),
    )
    return result.artifact
