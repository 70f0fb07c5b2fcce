"""End-to-end device frame time vs the raw backend call, per backend, in one run.

For each artifact of one model (ResNet-18 random weights by default, or the real SqueezeNet
Caltech-256 weights with --squeezenet) this times, on a camera-sized BGR frame:

* ``raw``: ``runtime.infer(x)`` on an already preprocessed tensor (the floor);
* ``e2e``: ``EdgeModel.predict(frame)`` + building the payload + publishing it to a
  JSON-lines file (what ``caltech-edge infer`` does per frame);
* ``e2e prefetch`` (frames/s of ``runtime.loop.run(prefetch=True)`` over a frame list,
  preprocessing of frame n+1 overlapping inference of frame n);
* ``e2e fast``: ``e2e`` with ``load_model(..., fast_preprocess="linear")`` (crop first);
* ``e2e fused`` for OpenVINO IRs: normalisation compiled into the graph (runtime/fused.py);
* ``e2e float path`` for integer-input files (``tflite-int8``, added with ``--artifact``):
  ``e2e`` with the uint8 pixel path turned off (``takes_pixels = False``), i.e. normalize to
  float and quantize back, so ``pixels/float`` (and ``fast pixels/float`` with the crop-first
  resize) is the pixel path's gain measured in the same run.

Targets (issue 6): e2e within 1.1x of raw for FP32 ONNX Runtime, 1.5x for the INT8 IR.
All variants of one backend alternate round by round (best round reported) so a busy
machine slows them alike. Run under ``flock /tmp/caltech-edge-bench.lock`` so benchmarks
never overlap:

    flock /tmp/caltech-edge-bench.lock .venv/bin/python benchmarks/bench_runtime.py
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from caltech_edge._bench import machine_info, markdown_table, time_ms
from caltech_edge.card import ModelCard
from caltech_edge.data.transforms import preprocess

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CALTECH_EDGE_SHARED_DATA", REPO.parent / "shared" / "data"))


def _frames(size: tuple[int, int], n: int) -> list[np.ndarray]:
    """Camera-sized BGR frames: real sample photos resized when present, else generated."""
    paths = sorted((SHARED / "caltech256-sample").glob("*/*.jpg"))[::50][:n]
    if paths:
        return [cv2.resize(cv2.imread(str(p)), size, interpolation=cv2.INTER_LINEAR) for p in paths]
    rng = np.random.default_rng(0)
    return [cv2.resize(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), size) for _ in range(n)]


def _export(out: Path, squeezenet: bool) -> dict[str, Path]:
    import torch

    from caltech_edge.compress.quantize import quantize_openvino
    from caltech_edge.data.calibration import CalibrationReader
    from caltech_edge.export.mxnet import onnx_to_mxnet
    from caltech_edge.export.onnx import export_onnx
    from caltech_edge.export.openvino import onnx_to_openvino
    from caltech_edge.models import create_model

    if squeezenet:
        weights = SHARED / "weights" / "squeezenet1_1_caltech256.pth"
        names_file = SHARED / "weights" / "squeezenet1_1_caltech256_idx_to_class.txt"
        from caltech_edge.card import read_class_names

        names = read_class_names(names_file)
        model = create_model("squeezenet1_1", len(names), weights=str(weights)).eval()
        card = ModelCard(arch="squeezenet1_1", class_names=names, name="squeezenet-caltech256")
    else:
        torch.manual_seed(0)
        model = create_model("resnet18", 10, weights=None).eval()
        card = ModelCard(arch="resnet18", class_names=tuple(f"c{i}" for i in range(10)))
    onnx_path = export_onnx(model, card, out / "onnx" / "model.onnx")
    arts = {"onnxruntime fp32": onnx_path}
    arts["openvino fp32"] = onnx_to_openvino(onnx_path, out / "openvino" / "model.xml", card=card)
    arts["mxnet fp32"] = onnx_to_mxnet(onnx_path, out / "mxnet" / "model-symbol.json", card=card)
    calib = [
        preprocess(f, card.preprocess, input_order="BGR")[None] for f in _frames((640, 480), 16)
    ]
    arts["openvino int8"] = quantize_openvino(
        arts["openvino fp32"],
        out / "openvino-int8" / "model.xml",
        calibration=CalibrationReader.from_arrays(calib),
        card=card,
        subset_size=len(calib),
    )
    return arts


def bench_backend(
    label: str, path: Path, frames: list[np.ndarray], rounds: int, iters: int
) -> dict:
    from caltech_edge.runtime import load_model
    from caltech_edge.runtime.buffer import Sequencer
    from caltech_edge.runtime.fused import load_fused
    from caltech_edge.runtime.loop import run
    from caltech_edge.runtime.payload import make_payload
    from caltech_edge.runtime.publish import FilePublisher

    model = load_model(path)
    frame = frames[0]
    x = model.preprocess(frame)[None]  # float CHW, or the uint8 crop of a pixel model
    tmp = Path(tempfile.mkdtemp(prefix="bench-runtime-"))
    pub = FilePublisher(tmp / "out.jsonl")
    seq = Sequencer()
    fused = load_fused(path) if path.suffix == ".xml" else None
    fast = load_model(path, fast_preprocess="linear")
    floats = floats_fast = None
    if model.takes_pixels:  # the A/B: same file, float tensor + quantization
        floats, floats_fast = load_model(path), load_model(path, fast_preprocess="linear")
        floats.takes_pixels = floats_fast.takes_pixels = False

    def e2e(m=model):
        result = m.predict(frame)
        pub.publish(make_payload(result, seq=seq.next(), device="bench"))

    def loop_fps(prefetch: bool) -> float:
        source = ((i, frames[i % len(frames)]) for i in range(iters))
        stats = run(source, model, publishers=[pub], prefetch=prefetch)
        return stats["fps"]

    best: dict[str, float] = {}
    for _ in range(rounds):
        cases = {
            "raw": lambda: time_ms(lambda: model.logits(x), iters=iters).median_ms,
            "e2e": lambda: time_ms(e2e, iters=iters).median_ms,
            "loop": lambda: 1000.0 / loop_fps(False),
            "loop prefetch": lambda: 1000.0 / loop_fps(True),
            "e2e fast": lambda: time_ms(lambda: e2e(fast), iters=iters).median_ms,
        }
        if fused is not None:
            cases["e2e fused"] = lambda: time_ms(lambda: e2e(fused), iters=iters).median_ms
        if floats is not None:
            cases["e2e float path"] = lambda: time_ms(lambda: e2e(floats), iters=iters).median_ms
            cases["fast float path"] = lambda: (
                time_ms(lambda: e2e(floats_fast), iters=iters).median_ms
            )
        for name, fn in cases.items():
            ms = fn()
            best[name] = min(best.get(name, float("inf")), ms)
    pub.close()
    pre = model.predict(frame)["latency_ms"]
    row = {"backend": label, "raw ms": round(best["raw"], 2), "e2e ms": round(best["e2e"], 2)}
    row["e2e/raw"] = round(best["e2e"] / best["raw"], 3)
    row["loop prefetch ms"] = round(best["loop prefetch"], 2)
    row["prefetch/raw"] = round(best["loop prefetch"] / best["raw"], 3)
    row["loop ms"] = round(best["loop"], 2)
    row["fast ms"] = round(best["e2e fast"], 2)
    row["fast/raw"] = round(best["e2e fast"] / best["raw"], 3)
    if "e2e fused" in best:
        row["fused ms"] = round(best["e2e fused"], 2)
        row["fused/raw"] = round(best["e2e fused"] / best["raw"], 3)
    if "e2e float path" in best:
        row["float-path ms"] = round(best["e2e float path"], 2)
        row["pixels/float"] = round(best["e2e"] / best["e2e float path"], 3)
        row["fast pixels/float"] = round(best["e2e fast"] / best["fast float path"], 3)
    row["frames/s (best e2e)"] = round(1000.0 / min(v for k, v in best.items() if k != "raw"), 1)
    row["preprocess ms"] = pre["preprocess"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frame", default="640x480", help="camera frame WxH (640x480, 1280x720)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iters", type=int, default=40)
    parser.add_argument(
        "--squeezenet", action="store_true", help="real SqueezeNet Caltech-256 weights"
    )
    parser.add_argument(
        "--artifact",
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="also time an exported file, e.g. 'litert int8=export/tflite-int8/model.tflite'",
    )
    parser.add_argument(
        "--out", default=str(REPO / "benchmarks" / "results" / "bench_runtime.json")
    )
    args = parser.parse_args()
    w, h = (int(v) for v in args.frame.lower().split("x"))
    frames = _frames((w, h), 8)
    with tempfile.TemporaryDirectory(prefix="bench-runtime-models-") as tmp:
        t0 = time.perf_counter()
        arts = _export(Path(tmp), args.squeezenet)
        arts.update(dict(a.split("=", 1) for a in args.artifact))
        arts = {label: Path(path) for label, path in arts.items()}
        print(f"exported {len(arts)} artifacts in {time.perf_counter() - t0:.1f} s")
        rows = [bench_backend(k, v, frames, args.rounds, args.iters) for k, v in arts.items()]
    columns = list(dict.fromkeys(k for r in rows for k in r))
    table = markdown_table(rows, columns)
    print(f"\nframe {w}x{h}, model {'squeezenet1_1' if args.squeezenet else 'resnet18'} 224 px\n")
    print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "frame": [w, h],
                "squeezenet": args.squeezenet,
                "rows": rows,
                "machine": machine_info(),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
