"""Gluon model zoo classifiers for transfer learning, with weights that never download.

Pretrained weights come from an explicit ``.params`` file, or from MXNet's own model cache
(``$MXNET_HOME/models``, default ``~/.mxnet/models``) when the file is already there:
``mxnet.gluon.model_zoo`` would download silently, so we never call it with
``pretrained=True``. The head (``net.output``) is built for N classes; a params file whose
head has another size loads everything else (real transfer), with shapes checked.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, UnknownNameError, WeightsNotFoundError
from ..models.architectures import depths
from ._mxnet_compat import import_mxnet


@dataclass(frozen=True)
class GluonArch:
    name: str  # Gluon model zoo name
    family: str  # resnet | squeezenet | mobilenet


_DEPTHS = depths("resnet")  # from the one architecture table
GLUON_ARCHS: dict[str, GluonArch] = {
    **{f"resnet{d}_v{v}": GluonArch(f"resnet{d}_v{v}", "resnet") for v in (1, 2) for d in _DEPTHS},
    "squeezenet1.1": GluonArch("squeezenet1.1", "squeezenet"),
    "mobilenet1.0": GluonArch("mobilenet1.0", "mobilenet"),
    "mobilenet0.5": GluonArch("mobilenet0.5", "mobilenet"),
    "mobilenetv2_1.0": GluonArch("mobilenetv2_1.0", "mobilenet"),
    "mobilenetv2_0.5": GluonArch("mobilenetv2_0.5", "mobilenet"),
}

# torchvision-style names (the ones TrainConfig and the torch path use) -> Gluon names.
_ALIASES = {
    **{f"resnet{d}": f"resnet{d}_v1" for d in _DEPTHS},
    "squeezenet1_1": "squeezenet1.1",
    "mobilenet_v2": "mobilenetv2_1.0",
    "mobilenet_v1": "mobilenet1.0",
}


def gluon_arch(name: str, *, version: int | None = None) -> str:
    """Resolve ``name`` (Gluon or torchvision spelling) to a Gluon zoo name.

    ``version`` (1 or 2) picks ResNet v1/v2 for a bare ``resnetNN``; SageMaker's image
    classifier is ResNet v1, so that is the default.
    """
    key = str(name)
    if version is not None and key in _ALIASES and key.startswith("resnet"):
        if version not in (1, 2):
            raise UnknownNameError("ResNet version", str(version), ["1", "2"])
        key = f"{key}_v{version}"
    key = _ALIASES.get(key, key)
    if key not in GLUON_ARCHS:
        raise UnknownNameError("Gluon architecture", name, [*GLUON_ARCHS, *_ALIASES])
    return key


def gluon_arch_for_depth(num_layers: int | str, *, version: int = 1) -> str:
    """SageMaker's ``num_layers`` (18/34/50/101/152) -> ``resnetNN_vV``."""
    from ..models.architectures import arch_for_depth

    return gluon_arch(arch_for_depth(num_layers), version=version)


def mxnet_home() -> Path:
    return Path(os.environ.get("MXNET_HOME", Path.home() / ".mxnet"))


def cached_params_path(arch: str) -> Path:
    """Where ``mxnet.gluon.model_zoo`` keeps ``arch``'s ImageNet params."""
    mx = import_mxnet()
    from mxnet.gluon.model_zoo import model_store

    del mx
    name = gluon_arch(arch)
    return mxnet_home() / "models" / f"{name}-{model_store.short_hash(name)}.params"


def _zoo_url(arch: str) -> str:
    from mxnet.gluon.model_zoo import model_store

    name = gluon_arch(arch)
    file_name = f"{name}-{model_store.short_hash(name)}"
    return model_store._url_format.format(repo_url=model_store.apache_repo_url, file_name=file_name)


def _build(arch: str, num_classes: int) -> Any:
    mx = import_mxnet()
    from mxnet.gluon import nn
    from mxnet.gluon.model_zoo import vision

    net = vision.get_model(arch, classes=num_classes, pretrained=False)
    if GLUON_ARCHS[arch].family == "squeezenet":
        # The zoo pools with a fixed AvgPool2D(13), which only fits 224 px input. A global
        # average is identical at 224 and works at any size (torchvision does the same).
        with net.output.name_scope():
            pool = nn.GlobalAvgPool2D()
        net.output._children["2"] = pool
        net.output.register_child(pool, "2")
    del mx
    return net


def load_params_file(path: str | Path) -> dict[str, Any]:
    """Read a Gluon/MXNet ``.params`` file into ``{name: NDArray}`` with typed errors."""
    mx = import_mxnet()
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: params file not found")
    try:
        loaded = mx.nd.load(str(path))
    except Exception as exc:  # MXNetError on any malformed file
        raise CheckpointError(
            f"{path}: cannot read as MXNet params ({type(exc).__name__}: {str(exc)[:200]}). "
            "Pass a file written by net.save_parameters() or net.export()."
        ) from exc
    if not isinstance(loaded, dict) or not loaded:
        raise CheckpointError(f"{path}: holds no named parameters")
    return {k.split(":", 1)[1] if k[:4] in ("arg:", "aux:") else k: v for k, v in loaded.items()}


# torchvision networks whose layers are the Gluon zoo's, in the same order with the same
# meaning. Not the ResNet-50+ bottlenecks: Gluon v1 strides the first 1x1 convolution,
# torchvision (v1.5) the 3x3, so equal shapes would silently compute something else.
TORCHVISION_COMPATIBLE = {"squeezenet1.1", "resnet18_v1", "resnet34_v1"}
#: a torchvision state dict as torch saved it, or as :func:`torchvision_state_to_npz` wrote it
#: for the mxnet toolchain, which has no torch
TORCHVISION_SUFFIXES = (".pth", ".pt", ".npz")


def torchvision_state_to_npz(path: str | Path, dst: str | Path) -> Path:
    """Save a torchvision ``.pth`` as an ``.npz`` of float32 arrays in the same order.

    Runs where torch is (the core); the Gluon trainer in the mxnet toolchain then reads the
    ``.npz`` with numpy alone. No pickle either way.
    """
    import numpy as np

    from .._io import atomic_write_bytes
    from ..models.torchvision_zoo import load_state_dict_file

    arrays = {k: v.float().numpy() for k, v in load_state_dict_file(path).items()}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return atomic_write_bytes(Path(dst), buffer.getvalue())


def _torchvision_tensors(path: Path) -> list[tuple[str, Any]]:
    import numpy as np

    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                pairs = [(k, data[k]) for k in data.files]
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: unreadable weights archive ({exc})") from exc
    else:
        from ..models.torchvision_zoo import load_state_dict_file

        pairs = [(k, v.float().numpy()) for k, v in load_state_dict_file(path).items()]
    return [(k, v) for k, v in pairs if not k.endswith("num_batches_tracked")]


def torchvision_state_to_gluon(net: Any, path: str | Path, *, arch: str) -> dict[str, Any]:
    """A torchvision state dict (``.pth``) as ``{structural gluon name: NDArray}``.

    Tensors are matched by position (BatchNorm weight/bias/mean/var = gamma/beta/mean/var,
    ``num_batches_tracked`` dropped) and every shape is checked; the head may differ in
    size. This is how the real ImageNet SqueezeNet features in ``../shared/data`` reach
    the Gluon path.
    """
    arch = gluon_arch(arch)
    if arch not in TORCHVISION_COMPATIBLE:
        raise CheckpointError(
            f"{path}: a torchvision checkpoint can only initialise Gluon "
            f"{', '.join(sorted(TORCHVISION_COMPATIBLE))} (layer-for-layer identical); "
            f"{arch} differs from its torchvision namesake. Pass Gluon .params instead."
        )
    mx = import_mxnet()
    tensors = _torchvision_tensors(Path(path))
    own = list(net._collect_params_with_prefix().items())
    if len(tensors) != len(own):
        raise CheckpointError(
            f"{path}: {len(tensors)} tensors, but Gluon {arch} has {len(own)} parameters; "
            "is it a torchvision model of this architecture?"
        )
    head_ids = {id(p) for p in net.output.collect_params().values()}
    out = {}
    for (tname, tensor), (gname, param) in zip(tensors, own):
        if tuple(tensor.shape) != tuple(param.shape) and id(param) not in head_ids:
            raise CheckpointError(
                f"{path}: {tname} {tuple(tensor.shape)} does not fit Gluon {gname} "
                f"{tuple(param.shape)}; the file is for another architecture"
            )
        out[gname] = mx.nd.array(tensor)
    return out


def _own_params(net: Any, structural: bool) -> dict[str, Any]:
    if structural:
        return dict(net._collect_params_with_prefix())
    # symbol-style names: drop the per-instance prefix (resnetv10_, resnetv11_, ...)
    return {p.name[len(net.prefix) :]: p for p in net.collect_params().values()}


def materialize(net: Any, image_size: int = 32) -> None:
    """Run one dummy forward pass so every deferred parameter shape is known."""
    mx = import_mxnet()
    net(mx.nd.zeros((1, 3, image_size, image_size)))


def load_weights(net: Any, state: Mapping[str, Any], *, arch: str, source: str) -> list[str]:
    """Copy every tensor that fits; a head of another size is skipped. Returns skipped keys.

    Anything outside the head that is missing, unexpected or mis-shaped means the file is
    for another architecture, and raises :class:`CheckpointError`.
    """
    gluon_arch(arch)
    structural = any("." in k for k in state)
    own = _own_params(net, structural)
    head_ids = {id(p) for p in net.output.collect_params().values()}
    head = {k for k, p in own.items() if id(p) in head_ids}
    if structural:
        keys = dict(state)
    else:  # drop the file's instance prefix, as _own_params does for ours
        keys = {k.split("_", 1)[1] if "_" in k else k: v for k, v in state.items()}
    skipped, bad = [], []
    for key, value in keys.items():
        param = own.get(key)
        if param is None:
            bad.append(f"unexpected {key}")
        elif tuple(param.shape) != tuple(value.shape):
            if key in head:
                skipped.append(key)
            else:
                bad.append(f"{key}: {tuple(value.shape)} vs {tuple(param.shape)}")
    missing = [k for k in own if k not in keys and k not in head]
    if bad or missing:
        detail = "; ".join((bad + [f"missing {k}" for k in missing])[:6])
        raise CheckpointError(
            f"{source}: does not match Gluon architecture {arch!r} ({detail}). "
            "Check --arch, or that the file holds this model's weights."
        )
    for key, value in keys.items():
        if key not in skipped:
            own[key].set_data(value)
    return skipped


def create_gluon_model(
    arch: str,
    num_classes: int,
    *,
    weights: str | Path | None = "imagenet",
    image_size: int = 224,
) -> Any:
    """Build Gluon ``arch`` with a fresh ``num_classes`` head, initialised and ready to run.

    ``weights``: ``"imagenet"`` (MXNet's local model cache only, never downloaded),
    ``None``/``"none"`` (random init), or a path to a ``.params`` file (its head may have
    another size). ``image_size`` only sizes the dummy pass that materialises shapes.
    """
    mx = import_mxnet()
    arch = gluon_arch(arch)
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    path: Path | None = None
    if weights in ("imagenet", "default", "pretrained"):
        path = cached_params_path(arch)
        if not path.is_file():
            raise WeightsNotFoundError(
                f"ImageNet weights for Gluon {arch} are not in the local MXNet cache ({path}) "
                f"and caltech-edge never downloads. Download {_zoo_url(arch)}, unzip it into "
                f"{path.parent} (or set MXNET_HOME), or pass --weights FILE.params, or "
                "--weights none to train from scratch."
            )
    elif weights not in (None, "none", "scratch"):
        path = Path(weights)
    net = _build(arch, int(num_classes))
    net.initialize(mx.init.Xavier(), ctx=mx.cpu())
    materialize(net, min(int(image_size), 64))
    if path is not None:
        state = (
            torchvision_state_to_gluon(net, path, arch=arch)
            if path.suffix in TORCHVISION_SUFFIXES
            else load_params_file(path)
        )
        load_weights(net, state, arch=arch, source=str(path))
    return net


def head_params(net: Any) -> dict[str, Any]:
    return {k: p for k, p in net._collect_params_with_prefix().items() if k.startswith("output.")}


def feature_blocks(net: Any) -> list[Any]:
    """The children of ``net.features`` from input to output (stages for last-k unfreezing)."""
    return list(net.features._children.values())
