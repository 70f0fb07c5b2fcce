"""DeepLens package contents, the Lambda from the zip on a video, and the device-only import rules."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from runtime_helpers import run_cli

from caltech_edge.errors import ExportError
from caltech_edge.export.package import CORE_MODULES, LAMBDA_SOURCE, package
from caltech_edge.runtime.payload import validate_payload

REPO = Path(__file__).resolve().parents[2]
BLOCK = (
    "import sys\nfor m in ('torch', 'torchvision', 'mxnet', 'onnx'):\n    sys.modules[m] = None\n"
)


@pytest.fixture(scope="module")
def packaged(edge_artifacts, tmp_path_factory):
    out = tmp_path_factory.mktemp("package")
    proc = run_cli("package", str(edge_artifacts["root"]), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    paths = json.loads(proc.stdout)
    return Path(paths["model_tar_gz"]), Path(paths["lambda_zip"])


def test_model_tar_gz_layout(packaged, edge_artifacts):
    tar_path, _ = packaged
    with tarfile.open(tar_path) as tar:
        names = set(tar.getnames())
        assert {
            "model-symbol.json",
            "model-0000.params",
            "model-shapes.json",
            "synset.txt",
            "card.json",
        } <= names
        assert all(not n.startswith(("/", "..")) for n in names)
        shapes = json.loads(tar.extractfile("model-shapes.json").read())
        synset = tar.extractfile("synset.txt").read().decode().splitlines()
        symbol = json.loads(tar.extractfile("model-symbol.json").read())
    assert shapes == [{"shape": [1, 3, 32, 32], "name": "data"}]
    assert synset == list(edge_artifacts["card"].class_names)
    assert "nodes" in symbol and "openvino/model.xml" in names


def test_model_tar_gz_loads_in_mxnet_module(packaged, edge_artifacts, tmp_path):
    """What DeepLens does with the archive: unpack, mx.mod.Module on symbol/params (plain
    MXNet in the mxnet toolchain's interpreter: MXNet is not in the core environment)."""
    import subprocess

    import numpy as np

    from caltech_edge.toolchains.env import ensure
    from caltech_edge.toolchains.table import get_toolchain

    with tarfile.open(packaged[0]) as tar:
        tar.extractall(tmp_path, filter="data")
    np.save(tmp_path / "x.npy", edge_artifacts["x"])
    script = (
        "import sys, numpy as np, mxnet as mx\n"
        "sym, args, auxs = mx.model.load_checkpoint(sys.argv[1], 0)\n"
        "mod = mx.mod.Module(symbol=sym, data_names=['data'], label_names=None, context=mx.cpu())\n"
        "mod.bind(for_training=False, data_shapes=[('data', (1, 3, 32, 32))])\n"
        "mod.set_params(args, auxs)\n"
        "mod.forward(mx.io.DataBatch([mx.nd.array(np.load(sys.argv[2]))]), is_train=False)\n"
        "np.save(sys.argv[3], mod.get_outputs()[0].asnumpy())\n"
    )
    python = ensure(get_toolchain("mxnet"))  # prepared by `make test`
    argv = [str(tmp_path / "model"), str(tmp_path / "x.npy"), str(tmp_path / "y.npy")]
    subprocess.run([str(python), "-c", script, *argv], check=True, env={"PATH": "/usr/bin:/bin"})
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), edge_artifacts["reference"], atol=1e-3)


def test_lambda_zip_has_runtime_and_no_torch(packaged):
    _, zip_path = packaged
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
        assert "lambda_function.py" in names
        assert zf.read("lambda_function.py").decode() == LAMBDA_SOURCE
        assert (
            "caltech_edge/runtime/predictor.py" in names
            and "caltech_edge/runtime/backends/onnxruntime.py" in names
        )
        assert {"caltech_edge/" + m for m in CORE_MODULES} <= set(names)
        assert not any(
            n.startswith(("caltech_edge/train", "caltech_edge/models", "caltech_edge/compress"))
            for n in names
        )
        for name in names:
            tree = ast.parse(zf.read(name))
            for node in tree.body:  # module level: nothing heavy at import time
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    mods = (
                        [a.name for a in node.names]
                        if isinstance(node, ast.Import)
                        else [node.module or ""]
                    )
                    assert not any(
                        m.split(".")[0] in ("torch", "torchvision", "mxnet") for m in mods
                    ), name
    assert (
        REPO / "examples" / "deeplens_lambda" / "lambda_function.py"
    ).read_text() == LAMBDA_SOURCE


def test_lambda_runs_from_the_zip_on_a_video_without_torch(
    packaged, edge_artifacts, video, tmp_path
):
    with zipfile.ZipFile(packaged[1]) as zf:
        zf.extractall(tmp_path / "lambda")
    code = BLOCK + (
        "sys.path.insert(0, {root!r})\n"
        "import runpy, caltech_edge\n"
        "assert caltech_edge.__file__.startswith({root!r}), caltech_edge.__file__\n"
        "runpy.run_path({root!r} + '/lambda_function.py', run_name='lambda_function')\n"
        "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
    ).format(root=str(tmp_path / "lambda"))
    env = {
        "MODEL_PATH": str(edge_artifacts["onnxruntime"]),
        "SOURCE": str(video),
        "MAX_FRAMES": "3",
        "STREAM": str(tmp_path / "stream.mjpg"),
        "BUFFER_DIR": str(tmp_path / "state"),
        "THING_NAME": "deeplens-test",
        "PATH": "/usr/bin:/bin",
    }
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    payloads = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [p["seq"] for p in payloads] == [1, 2, 3]
    assert all(validate_payload(p) == [] and p["device"] == "deeplens-test" for p in payloads)
    assert (tmp_path / "stream.mjpg").stat().st_size > 0


def test_runtime_imports_and_predicts_with_torch_and_mxnet_blocked(edge_artifacts, video):
    code = BLOCK + (
        "import cv2\n"
        "from caltech_edge.runtime import load_model, open_source, run, make_server\n"
        "from caltech_edge.runtime.publish import MqttPublisher, FilePublisher\n"
        "m = load_model({model!r})\n"
        "frame = cv2.imread({img!r}) if False else next(iter(open_source({video!r})))[1]\n"
        "out = m.predict(frame)\n"
        "assert out['predictions'][0]['label'] in {labels!r}\n"
        "stats = run(open_source({video!r}), m, max_frames=5)\n"
        "assert stats['published'] == 5, stats\n"
        "bad = [k for k in ('torch', 'mxnet', 'torchvision') if sys.modules.get(k) is not None]\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    ).format(
        model=str(edge_artifacts["onnxruntime"]),
        video=str(video),
        img="",
        labels=list(edge_artifacts["card"].class_names),
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_runtime_source_is_python38_compatible():
    vermin = Path(sys.executable).parent / "vermin"
    if not vermin.exists():
        pytest.fail("vermin is part of the dev extra: pip install -e '.[dev]'")
    pkg = REPO / "src" / "caltech_edge"
    targets = [pkg / "runtime"] + [pkg / m for m in CORE_MODULES]
    proc = subprocess.run(
        [
            str(vermin),
            "--target=3.8-",
            "--no-tips",
            "--violations",
            "--eval-annotations",
            *map(str, targets),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_package_without_mxnet_export_is_a_clear_error(tmp_path):
    (tmp_path / "onnx").mkdir()
    with pytest.raises(ExportError, match="--to onnx,mxnet"):
        package(tmp_path, out=tmp_path / "out")
