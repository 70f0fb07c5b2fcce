"""One registry per axis: the framework objects, the architecture table, and the rules that
keep the core free of mxnet and of branches on framework names."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from caltech_edge.config import TORCH_ARCH_NAMES, Framework, TrainConfig
from caltech_edge.frameworks.base import FRAMEWORKS, framework_for_checkpoint, get_framework
from caltech_edge.models.architectures import ARCHITECTURES, arch_for_depth, depths, names_for

SRC = Path(__file__).resolve().parents[2] / "src" / "caltech_edge"


def test_framework_enum_is_the_registry() -> None:
    assert tuple(f.value for f in Framework) == FRAMEWORKS.names()


@pytest.mark.parametrize("name", FRAMEWORKS.names())
def test_every_framework_object_has_the_whole_interface(name: str) -> None:
    """The parity of the axis: each member answers every question the library asks."""
    fw = get_framework(name)
    assert fw.name == name
    for method in ("train", "evaluate", "predictor", "run_source", "checkpoint_source",
                   "produce", "eager_baseline", "architectures"):  # fmt: skip
        assert callable(getattr(fw, method)), method
    archs = fw.architectures()
    assert archs and set(archs) <= set(ARCHITECTURES)
    assert archs == names_for(name)
    assert isinstance(fw.native_formats, tuple)


def test_checkpoints_go_to_the_framework_that_reads_them() -> None:
    assert framework_for_checkpoint("x.params").name == "gluon"
    assert framework_for_checkpoint("x.pth").name == "torch"
    assert framework_for_checkpoint("weights.bin").name == "torch"


def test_the_architecture_table_drives_config_and_sagemaker() -> None:
    assert names_for("torch") == TORCH_ARCH_NAMES
    assert depths("resnet") == (18, 34, 50, 101, 152)
    assert [arch_for_depth(d) for d in depths()] == [f"resnet{d}" for d in depths()]
    assert TrainConfig.from_sagemaker({"num_layers": "34"}).arch == "resnet34"
    for row in ARCHITECTURES.values():
        assert row.frameworks and set(row.frameworks) <= set(FRAMEWORKS.names())
        assert row.input_size > 0
    from caltech_edge.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="num_layers"):
        arch_for_depth(20)


def test_only_the_framework_axis_names_gluon() -> None:
    """No `== "gluon"` branches elsewhere: the name lives in the registry and gluon's modules."""
    allowed = {SRC / "frameworks" / "base.py"}
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path in allowed or (path.parent.name == "frameworks" and path.name.startswith("gluon")):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if '"gluon"' in line or "'gluon'" in line:
                offenders.append(f"{path.relative_to(SRC)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_no_framework_branches_outside_the_axis() -> None:
    pattern = re.compile(r"""(==|!=)\s*["'](torch|gluon)["']""")
    offenders = [
        f"{p.relative_to(SRC)}: {m.group(0)}"
        for p in sorted(SRC.rglob("*.py"))
        if p.parent.name != "frameworks" and p.name != "rundir.py"  # rundir: a load guard
        for m in pattern.finditer(p.read_text(encoding="utf-8"))
    ]
    assert not offenders, offenders


def test_the_core_and_the_torch_pipeline_never_import_mxnet(tmp_path: Path) -> None:
    code = f"""
import sys
import caltech_edge, caltech_edge.cli, caltech_edge.export, caltech_edge.runtime, caltech_edge.train
from caltech_edge.cli import build_parser
build_parser()
from caltech_edge.config import TrainConfig
from caltech_edge.data.synth import synthesize
from caltech_edge.export import export
from caltech_edge.train import train
synthesize({str(tmp_path / "data")!r}, classes=3, per_class=8, size=48, seed=0)
cfg = TrainConfig(arch="squeezenet1_1", weights="none", epochs=1, image_size=32,
                  batch_size=8, train_per_class=4, val_per_class=1)
run = train(cfg, data={str(tmp_path / "data")!r}, out={str(tmp_path / "run")!r}, progress=False)
export(run, formats="onnx,openvino", out={str(tmp_path / "exp")!r}, verify_images=4,
       progress=False)
print(sorted(m for m in sys.modules if m.split('.')[0] == 'mxnet'))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_calling_mxnet_code_directly_in_the_core_says_where_mxnet_lives(tmp_path: Path) -> None:
    from caltech_edge.errors import MissingDependencyError
    from caltech_edge.frameworks.gluon import train

    config = TrainConfig(framework="gluon", arch="resnet18", weights="none", epochs=1)
    with pytest.raises(MissingDependencyError, match="caltech-edge toolchain install mxnet"):
        train(config, data=tmp_path, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()  # it failed before writing anything
