"""The table of toolchains: isolated environments for converters that cannot share the core.

A toolchain is what a pre-commit hook environment is: a named, cached virtual environment
built on first need from a fixed list of requirements. MXNet 1.9.1 is the first member: it
imports only with numpy < 1.24, so it cannot live beside the core's numpy 2, OpenVINO 2026
and NNCF 3. Which formats and frameworks need a toolchain is declared on *their* axes (the
``toolchain`` column of :data:`caltech_edge.export.formats.FORMATS` and of the framework
registry) and read back here, so each fact is written once.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._registry import Registry, available


@dataclass(frozen=True)
class Toolchain:
    """One isolated environment: its pip requirements and the module that proves it works."""

    name: str
    requirements: tuple[str, ...]
    #: the module the toolchain exists for; when it imports in the core's own interpreter
    #: (a DeepLens image with mxnet installed) work runs in-process and no toolchain is built
    provides: str
    description: str = ""

    def in_process(self) -> bool:
        """Whether the core interpreter already has :attr:`provides` (no subprocess needed)."""
        return available(self.provides)

    @property
    def formats(self) -> tuple[str, ...]:
        """Export formats whose producer runs in this toolchain (from the formats table)."""
        from ..export.formats import FORMATS

        return tuple(f.name for f in FORMATS.values() if f.toolchain == self.name)

    @property
    def frameworks(self) -> tuple[str, ...]:
        """Frameworks whose training/export runs in this toolchain (from the framework axis)."""
        from ..frameworks.base import FRAMEWORKS

        return tuple(e.name for e in FRAMEWORKS if e.info.get("toolchain") == self.name)


#: MXNet 1.9.1 is the last release (Apache retired MXNet in 2023). numpy < 1.24 because it
#: still uses ``np.bool``; opencv < 4.12 because 4.12 requires numpy 2; onnx 1.17 is the newest
#: that MXNet's ONNX importer and exporter (with our ``onnx.mapping`` shim) both work with;
#: uv picks the newest onnxruntime that still accepts numpy < 1.24. No torch: a torchvision
#: ``.pth`` for Gluon is converted to ``.npz`` by the core first (gluon_framework).
#: caltech_edge itself is not installed there: the worker imports the core's own source
#: (see :mod:`caltech_edge.toolchains.client`), so the two sides always run the same code.
MXNET = Toolchain(
    name="mxnet",
    requirements=(
        "mxnet==1.9.1",
        "numpy>=1.21,<1.24",
        "onnx==1.17.0",
        "protobuf>=3.20.2",
        "opencv-python-headless>=4.8,<4.12",
        "onnxruntime>=1.16",  # a core dependency: the worker can check ONNX it wrote
        "tqdm>=4.60",
        "matplotlib>=3.7,<3.10",
        "pytest>=7",
        "pytest-timeout>=2",
    ),
    provides="mxnet",
    description="MXNet 1.9.1 + numpy<1.24: Gluon training, Gluon->ONNX, ONNX->MXNet, MXNet runtime",
)

TOOLCHAINS = Registry("toolchain")
TOOLCHAINS.register("mxnet", "caltech_edge.toolchains.table:MXNET")


def get_toolchain(name: str) -> Toolchain:
    """The toolchain called ``name``; an unknown name lists the valid ones."""
    return TOOLCHAINS.get(name)
