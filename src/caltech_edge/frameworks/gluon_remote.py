"""Gluon entry points with JSON-friendly signatures, called through :func:`toolchains.run`.

They run in the ``mxnet`` toolchain's worker when the core cannot import mxnet, or directly
in-process when it can (a DeepLens image): paths go in as strings, cards and configs as
dicts, and plain data comes back, so both routes behave the same. Each one is a thin
wrapper over :mod:`.gluon` / :mod:`.gluon_export`; no logic lives here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def train(
    config: dict[str, Any], data: str, out: str, resume: bool = True, progress: bool = True
) -> str:
    from ..config import TrainConfig
    from .gluon import train as _train

    run = _train(TrainConfig.from_dict(config), data=data, out=out, resume=resume,
                 progress=progress)  # fmt: skip
    return str(run.root)


def evaluate(run: str, data: str, split: str = "test") -> dict[str, Any]:
    from .gluon import evaluate as _evaluate

    return _evaluate(run, data=data, split=split)


def to_onnx(
    run: str, dst: str, card: dict[str, Any], opset: int = 13, dynamic_batch: bool = False
) -> str:
    from ..card import ModelCard
    from .gluon_export import gluon_to_onnx

    path = gluon_to_onnx(run, dst, card=ModelCard.from_dict(card), opset=opset,
                         dynamic_batch=dynamic_batch)  # fmt: skip
    return str(path)


def checkpoint_run(
    checkpoint: str, arch: str, names: list[str], image_size: int, workdir: str
) -> dict[str, Any]:
    """Rebuild a Gluon ``.params`` checkpoint as a run-like folder (symbol, params, card)."""
    from .._io import sha256_file
    from ..card import ModelCard
    from ..data.transforms import PreprocessSpec
    from ..errors import CheckpointError
    from .gluon_export import export_symbol
    from .gluon_models import create_gluon_model, gluon_arch, load_params_file, load_weights

    arch = gluon_arch(arch)  # unknown -> did-you-mean over Gluon and torchvision spellings
    state = load_params_file(checkpoint)  # missing/corrupt -> CheckpointError
    net = create_gluon_model(arch, len(names), weights=None, image_size=image_size)
    skipped = load_weights(net, state, arch=arch, source=str(checkpoint))
    if skipped:
        raise CheckpointError(
            f"{checkpoint}: its classifier ({', '.join(skipped)}) does not fit {len(names)} "
            "classes; the classes file must list one name per output of the checkpoint"
        )
    run = Path(workdir)
    export_symbol(net, run / "model", image_size=image_size)
    card = ModelCard(
        arch=arch,
        class_names=tuple(names),
        preprocess=PreprocessSpec(image_size=image_size),
        framework="gluon",
        format="mxnet",
        source_sha256=sha256_file(checkpoint),
    )
    card.save(run / "card.json")
    return card.to_dict()


def create_run_files(
    arch: str,
    names: list[str],
    image_size: int,
    workdir: str,
    seed: int = 0,
    params_file: str | None = None,
) -> dict[str, Any]:
    """A randomly initialised Gluon ``arch`` written as a run-like folder (tests, examples).

    ``params_file``: also save the network's parameters there (a foreign ``.params``
    checkpoint). Returns the card and the logits of an all-zeros image, for comparisons.
    """
    import numpy as np

    from ..card import ModelCard
    from ..data.transforms import PreprocessSpec
    from ._mxnet_compat import import_mxnet
    from .gluon_export import export_symbol
    from .gluon_models import create_gluon_model, gluon_arch

    mx = import_mxnet()
    mx.random.seed(seed)
    np.random.seed(seed)
    arch = gluon_arch(arch)
    net = create_gluon_model(arch, len(names), weights=None, image_size=image_size)
    if params_file:
        net.save_parameters(str(params_file))
    zeros = net(mx.nd.array(np.zeros((1, 3, image_size, image_size), np.float32))).asnumpy()
    export_symbol(net, Path(workdir) / "model", image_size=image_size)
    card = ModelCard(
        arch=arch,
        class_names=tuple(names),
        preprocess=PreprocessSpec(image_size=image_size),
        framework="gluon",
        format="mxnet",
    )
    card.save(Path(workdir) / "card.json")
    return {"card": card.to_dict(), "zeros_logits": zeros}


def logits(arch: str, num_classes: int, weights: str, batch: Any, image_size: int = 64) -> Any:
    """Gluon ``arch`` initialised from ``weights`` (``.params``/``.npz``/``imagenet``) applied to
    ``batch``: parity checks against torch from the core."""
    from ._mxnet_compat import import_mxnet
    from .gluon_models import create_gluon_model

    mx = import_mxnet()
    net = create_gluon_model(arch, num_classes, weights=weights, image_size=image_size)
    return net(mx.nd.array(batch)).asnumpy()
