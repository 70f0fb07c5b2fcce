"""Tiny LiteRT / ExecuTorch / Core ML artifacts for the device-backend tests.

Until the export rows of issue 13 are merged these follow the recipes of
shared/docs/ENVIRONMENT.md directly: ``litert_torch.convert`` with channel-last input,
PT2E full-integer INT8, ExecuTorch lowered to XNNPACK, ``coremltools.convert``. The card
travels as the export does it: inside the .tflite as a metadata buffer, beside the others
as ``<stem>.card.json``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CARD_METADATA_NAME = "caltech_edge.card"


def embed_tflite_metadata(path: Path, entries: dict[str, bytes]) -> Path:
    """Append named metadata buffers to a .tflite (what the TFLite Support writer does)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    model.metadata = list(model.metadata or [])
    for name, data in entries.items():
        buf = schema.BufferT()
        buf.data = np.frombuffer(data, dtype=np.uint8)
        model.buffers.append(buf)
        meta = schema.MetadataT()
        meta.name = name
        meta.buffer = len(model.buffers) - 1
        model.metadata.append(meta)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return path


def _calibration(card, n: int = 16):
    """Calibration batches from real photos (as INT8 rows calibrate on training images).

    The tests' own frames (``shared_sample_images(6)``) are included: these tests check the
    runtime's int8 I/O, not how well a random-weight net's ranges generalize.
    """
    import cv2
    import torch
    from runtime_helpers import shared_sample_images

    from caltech_edge.data.transforms import preprocess

    paths = shared_sample_images(6) + shared_sample_images(n)
    if paths:
        return [torch.from_numpy(preprocess(cv2.imread(str(p)), card.preprocess,
                                            input_order="BGR"))[None] for p in paths]  # fmt: skip
    g = torch.Generator().manual_seed(1)
    return [2 * torch.randn(card.input_shape, generator=g) for _ in range(n)]


def _pt2e(model, example, quantizer, calibration, *, fold: bool = False):
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    graph = torch.export.export(model, example).module()
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for x in calibration:
            prepared(*((x,) if len(example) == 1 else (x.permute(0, 2, 3, 1),)))
    return convert_pt2e(prepared, fold_quantize=fold)


def export_tflite(model, card, path: Path, *, int8: bool = False, embed: bool = True) -> Path:
    """NHWC-input .tflite of ``model``; full-integer INT8 (int8 input/output) with ``int8``."""
    import litert_torch
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    nhwc = litert_torch.to_channel_last_io(model.eval(), args=[0]).eval()
    x = torch.randn(card.input_shape).permute(0, 2, 3, 1).contiguous()
    if int8:
        from litert_torch.quantize.pt2e_quantizer import (
            PT2EQuantizer,
            get_symmetric_quantization_config,
        )
        from litert_torch.quantize.quant_config import QuantConfig

        q = PT2EQuantizer().set_global(
            get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)
        )
        pm = _pt2e(nhwc, (x,), q, [c.permute(0, 2, 3, 1) for c in _calibration(card)])
        edge = litert_torch.convert(pm, (x,), quant_config=QuantConfig(pt2e_quantizer=q))
    else:
        edge = litert_torch.convert(nhwc, (x,))
    edge.export(str(path))
    card = card.replace(format="tflite-int8" if int8 else "tflite",
                        precision="int8" if int8 else "fp32")  # fmt: skip
    if embed:
        embed_tflite_metadata(path, {CARD_METADATA_NAME: card.to_json().encode()})
    else:
        from caltech_edge.card import sidecar_path

        card.save(sidecar_path(path))
    return path


def export_pte(model, card, path: Path, *, int8: bool = False) -> Path:
    """ExecuTorch .pte lowered to XNNPACK (INT8 by PT2E + XNNPACKQuantizer), card beside it."""
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    from caltech_edge.card import sidecar_path

    path.parent.mkdir(parents=True, exist_ok=True)
    x = (torch.randn(card.input_shape),)
    model = model.eval()
    if int8:
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )

        q = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
        model = _pt2e(model, x, q, _calibration(card), fold=True)
    program = torch.export.export(model, x)
    lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
    path.write_bytes(lowered.to_executorch().buffer)
    card.replace(format="executorch-int8" if int8 else "executorch",
                 precision="int8" if int8 else "fp32").save(sidecar_path(path))  # fmt: skip
    return path


def export_coreml(model, card, path: Path) -> Path:
    """ML Program mlpackage, ImageType input, ClassifierConfig labels; card in its metadata."""
    import coremltools as ct
    import torch

    from caltech_edge.card import METADATA_KEY

    spec = card.preprocess
    traced = torch.jit.trace(model.eval(), torch.randn(card.input_shape))
    image = ct.ImageType(name="data", shape=card.input_shape, scale=1 / (255 * spec.std[0]),
                         bias=[-m / s for m, s in zip(spec.mean, spec.std)])  # fmt: skip
    ml = ct.convert(traced, inputs=[image], convert_to="mlprogram",
                    classifier_config=ct.ClassifierConfig(list(card.class_names)))  # fmt: skip
    ml.user_defined_metadata[METADATA_KEY] = card.replace(format="coreml").to_json()
    ml.save(str(path))
    return path


def tiny_net(classes: int = 3):
    """A small conv net (BatchNorm folded on export), quick to convert to every format."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, classes),
    ).eval()  # fmt: skip


def build_device_exports(out: Path, card, *, coreml: bool = True) -> dict[str, Path]:
    """An export directory as ``caltech-edge export`` lays it out, with every device format.

    ``OUT/card.json``, ``OUT/<format>/<artifact>`` (+ ``<stem>.card.json``) and
    ``export.json`` naming each artifact and its backend, like the export pipeline writes.
    """
    import json

    from caltech_edge.card import sidecar_path
    from caltech_edge.export.onnx import export_onnx

    model = tiny_net(card.num_classes)
    out.mkdir(parents=True, exist_ok=True)
    card.save(out / "card.json")
    paths = {
        "onnx": export_onnx(model, card, out / "onnx" / "model.onnx"),
        "tflite": export_tflite(model, card, out / "tflite" / "model.tflite"),
        "tflite-int8": export_tflite(model, card, out / "tflite-int8" / "model.tflite", int8=True),
        "executorch": export_pte(model, card, out / "executorch" / "model.pte"),
        "executorch-int8": export_pte(
            model, card, out / "executorch-int8" / "model.pte", int8=True
        ),
    }
    card.replace(format="onnx").save(sidecar_path(paths["onnx"]))
    if coreml:
        paths["coreml"] = export_coreml(model, card, out / "coreml" / "model.mlpackage")
    backends = {"onnx": "onnxruntime", "coreml": "coreml"}
    formats = {
        name: {
            "artifact": str(p.relative_to(out)),
            "backend": backends.get(name, name.split("-")[0].replace("tflite", "litert")),
            "precision": "int8" if name.endswith("int8") else "fp32",
        }
        for name, p in paths.items()
    }
    (out / "export.json").write_text(
        json.dumps({"card": card.to_dict(), "formats": formats, "run": None}, indent=2)
    )
    return paths
