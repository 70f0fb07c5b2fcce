"""Shared, expensive-once fixtures of the compression tests: one tiny *fitted* run.

Training even a 32 px ResNet-18 takes tens of seconds on the shared 2-core machine, so
the run is made the cheap way: random conv features and a classifier head solved in
closed form (ridge regression) on the synthetic training images. The model classifies
the generated shapes well, which is what INT8 top-1 agreement and pruning need (random
heads give near-uniform logits, where agreement is noise). The run directory has the
normal layout (card.json, model.pt, split.json, classes.txt), so it is what
``caltech_edge.rundir.load_torch_model`` and the trainer read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SIZE = 32
RIDGE = 10.0  # ridge strength of the closed-form head (after BatchNorm re-estimation)


def fit_head_run(root: Path, out: Path, *, arch: str = "resnet18", size: int = SIZE):
    import torch

    from caltech_edge.card import ModelCard, write_class_names
    from caltech_edge.data.datasets import open_dataset
    from caltech_edge.data.loader import iter_batches
    from caltech_edge.data.splits import make_split
    from caltech_edge.data.transforms import PreprocessSpec
    from caltech_edge.models.torchvision_zoo import arch_info, create_model
    from caltech_edge.rundir import RunDir

    torch.manual_seed(0)
    ds = open_dataset(root)
    split = make_split(ds, train_per_class=10, seed=0)
    spec = PreprocessSpec(image_size=size, resize_size=size + size // 8)
    model = create_model(arch, len(ds.classes), weights=None).eval()
    head_name = arch_info(arch).head
    parent, _, leaf = head_name.rpartition(".")
    head = model.get_submodule(head_name)
    holder = model.get_submodule(parent) if parent else model
    setattr(holder, leaf, torch.nn.Identity())
    x, y = next(iter_batches(ds, split.train, spec, batch_size=len(split.train)))
    # BatchNorm statistics of the data (as a trained net has), so activations are well scaled
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the pass
    with torch.no_grad():
        model.train()(torch.from_numpy(x))
    model.eval()
    with torch.no_grad():
        feats = model(torch.from_numpy(x)).reshape(len(x), -1).double()
    mu, sd = feats.mean(0), feats.std(0) + 1e-6
    z = (feats - mu) / sd
    target = torch.nn.functional.one_hot(torch.from_numpy(y), len(ds.classes)).double() * 8 - 4
    a = torch.cat([z, torch.ones(len(z), 1, dtype=torch.float64)], 1)
    w = torch.linalg.solve(
        a.T @ a + RIDGE * torch.eye(a.shape[1], dtype=torch.float64), a.T @ target
    )
    weight = (w[:-1] / sd[:, None]).T  # fold the standardisation into the head
    bias = w[-1] - mu @ (w[:-1] / sd[:, None])
    with torch.no_grad():
        head.weight.copy_(weight.reshape(head.weight.shape).float())
        head.bias.copy_(bias.float())
    setattr(holder, leaf, head)
    run = RunDir(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), run.weights)
    split.save(run.split)
    write_class_names(run.classes, ds.classes)
    card = ModelCard(arch=arch, class_names=ds.classes, preprocess=spec, dataset=ds.name)
    card.save(run.card)
    return run


@pytest.fixture(scope="session")
def tiny_run(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory):
    return fit_head_run(synthetic_root, tmp_path_factory.mktemp("tiny-run"))


@pytest.fixture(scope="session")
def tiny_model(tiny_run):
    from caltech_edge.rundir import load_torch_model

    return load_torch_model(tiny_run)


@pytest.fixture(scope="session")
def tiny_exports(tiny_model, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """FP32 ONNX and IR of ``tiny_run`` (the export stage's own converters)."""
    from caltech_edge.export.onnx import export_onnx
    from caltech_edge.export.openvino import onnx_to_openvino

    model, card = tiny_model
    out = tmp_path_factory.mktemp("tiny-export")
    onnx_path = export_onnx(model, card, out / "onnx" / "model.onnx")
    xml = onnx_to_openvino(onnx_path, out / "openvino" / "model.xml", card=card)
    return {"dir": out, "onnx": onnx_path, "openvino": xml}


@pytest.fixture(scope="session")
def tiny_calibration(synthetic_root: Path, tiny_run):
    import warnings

    from caltech_edge.data.calibration import CalibrationReader

    card = tiny_run.load_card()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 40 training images: below the recommended 100
        return CalibrationReader.from_dataset(
            synthetic_root, spec=card.preprocess, calib_size=40, split=tiny_run.split
        )


@pytest.fixture(scope="session")
def tiny_test_images(synthetic_root: Path, tiny_run) -> tuple[np.ndarray, np.ndarray]:
    from caltech_edge.compress.pipeline import test_images

    return test_images(tiny_run, synthetic_root, limit=None)
