"""A Gluon run exports from the core (no mxnet here) through the ``mxnet`` toolchain: its own
symbol/params ARE the MXNet format, ONNX comes from MXNet's exporter in the toolchain, IR
from that ONNX; all verified against the run executed by the MXNet backend over the worker."""

from __future__ import annotations

import filecmp
import sys
from pathlib import Path

import numpy as np
import pytest

from caltech_edge.data.synth import class_names
from caltech_edge.export import export
from caltech_edge.runtime.backends import open_runtime
from caltech_edge.toolchains import run as in_toolchain

CLASSES = tuple(class_names(4))  # the synthetic dataset's folders
REMOTE = "caltech_edge.frameworks.gluon_remote:create_run_files"


@pytest.fixture(autouse=True)
def _core_without_mxnet() -> None:
    if "mxnet" in sys.modules or _importable("mxnet"):
        pytest.fail("these tests prove the toolchain route: run them where mxnet is not installed")


def _importable(name: str) -> bool:
    from caltech_edge._registry import available

    return available(name)


@pytest.mark.parametrize(
    "arch, formats",
    [
        ("resnet18_v1", "onnx,mxnet,openvino,openvino-fp16"),
        ("resnet50_v1", "onnx,mxnet,openvino"),
    ],
)
def test_gluon_run_exports_to_every_format(arch, formats, tmp_path, synthetic_root) -> None:
    run = tmp_path / "run"
    run.mkdir()
    in_toolchain("mxnet", REMOTE, arch=arch, names=list(CLASSES), image_size=32,
                 workdir=str(run))  # fmt: skip
    result = export(
        run, formats=formats, out=tmp_path / "out", data=synthetic_root, verify_images=8
    )
    assert set(result.reports) == set(formats.split(","))
    assert all(r.passed for r in result.reports.values()), [
        r.summary() for r in result.reports.values()
    ]
    assert all(r.against.startswith("gluon run") for r in result.reports.values())
    params = result.artifacts["mxnet"].with_name("model-0000.params")
    assert filecmp.cmp(params, run / "model-0000.params", shallow=False)
    for name in ("onnx", "mxnet", "openvino"):
        card = open_runtime(result.artifacts[name]).card
        assert card.framework == "gluon" and card.class_names == CLASSES
    assert "mxnet" not in sys.modules


def test_gluon_params_checkpoint_from_the_cli(tmp_path: Path, synthetic_root, capsys) -> None:
    from caltech_edge.cli import main

    params = tmp_path / "trained.params"
    made = in_toolchain("mxnet", REMOTE, arch="squeezenet1.1", names=list(CLASSES),
                        image_size=32, workdir=str(tmp_path / "scratch"), seed=1,
                        params_file=str(params))  # fmt: skip
    classes = tmp_path / "classes.txt"
    classes.write_text("\n".join(CLASSES) + "\n")
    out = tmp_path / "out"
    argv = ["export", "--checkpoint", str(params), "--arch", "squeezenet1_1", "--classes"]
    argv += [str(classes), "--image-size", "32", "--to", "mxnet,openvino", "--out", str(out)]
    assert main([*argv, "--data", str(synthetic_root), "--images", "8"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("PASS") == 3 and "vs gluon run" in printed
    got = open_runtime(out / "mxnet" / "model-symbol.json").infer(
        np.zeros((1, 3, 32, 32), np.float32)
    )
    np.testing.assert_allclose(got, made["zeros_logits"], rtol=1e-5, atol=1e-5)

    classes.write_text("a\nb\n")  # two names for a four-way head
    assert main([*argv[:-1], str(tmp_path / "o2")]) == 2
    assert "does not fit 2 classes" in capsys.readouterr().err


def test_mxnet_artifacts_open_in_the_core_through_a_proxy(tmp_path: Path) -> None:
    """``open_runtime`` on MXNet files (no mxnet here) gives a runtime living in the worker."""
    from caltech_edge.errors import BackendError
    from caltech_edge.toolchains.client import call
    from caltech_edge.toolchains.runtime import ToolchainRuntime

    made = in_toolchain("mxnet", REMOTE, arch="squeezenet1.1", names=list(CLASSES),
                        image_size=32, workdir=str(tmp_path))  # fmt: skip
    rt = open_runtime(tmp_path / "model-symbol.json")
    assert isinstance(rt, ToolchainRuntime) and rt.name == "mxnet"
    assert rt.card.class_names == CLASSES and rt.input_name == "data"
    got = rt.infer(np.zeros((2, 3, 32, 32), np.float32))  # batch size change: re-bound there
    np.testing.assert_allclose(got[:1], made["zeros_logits"], rtol=1e-5, atol=1e-6)
    held = call("mxnet", "caltech_edge.toolchains.worker:hello")["handles"]
    rt.close()  # (collection does the same) the worker frees it with the next request
    assert call("mxnet", "caltech_edge.toolchains.worker:hello")["handles"] == held - 1
    with pytest.raises(BackendError, match="closed"):
        rt.infer(np.zeros((1, 3, 32, 32), np.float32))
