"""Decode + preprocess throughput: our OpenCV path vs PIL + torchvision v2, same run.

Both paths turn a JPEG file into the normalised CHW float32 input of a 224 model (resize
shorter side to 256, center crop 224, mean/std): ours is ``load_image`` + ``preprocess``
(OpenCV), the reference is ``PIL.Image.open(...).convert("RGB")`` + ``torch_eval_transform``
(torchvision.transforms.v2, Resize on the PIL image as stock torchvision does). Single-
threaded on purpose (cv2.setNumThreads(1), torch.set_num_threads(1)): a data-loader worker
or the device Lambda runs one image at a time per core. The two paths alternate round by
round so a busy machine slows both alike; the best round of each is reported.

    python benchmarks/bench_preprocess.py [--data ../shared/data] [--rounds 3]

Prints a markdown table with the ratio and writes JSON (with machine info) to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import cv2
import torch

from caltech_edge._bench import machine_info, markdown_table
from caltech_edge.data.datasets import open_dataset
from caltech_edge.data.imageio import load_image
from caltech_edge.data.torchdata import pil_load, torch_eval_transform
from caltech_edge.data.transforms import PreprocessSpec, preprocess

REPO = Path(__file__).resolve().parents[1]


def _image_sets(data: Path, limit_101: int) -> dict[str, list[Path]]:
    sets = {"caltech256-sample": [s.path for s in open_dataset(data / "caltech256-sample").samples]}
    c101 = open_dataset(data / "caltech101").samples
    step = max(1, len(c101) // limit_101)
    sets[f"caltech101 (every {step}th)"] = [s.path for s in c101[::step][:limit_101]]
    return sets


def _round(fn, paths: list[Path]) -> float:
    start = time.perf_counter()
    for path in paths:
        fn(path)
    return len(paths) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_data = Path(os.environ.get("CALTECH_EDGE_SHARED_DATA", REPO.parent / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--limit-101", type=int, default=400, help="Caltech-101 images used")
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "bench_preprocess.json"
    )
    args = parser.parse_args()

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    spec = PreprocessSpec(image_size=args.size)
    reference = torch_eval_transform(spec)
    paths = {
        "opencv (load_image + preprocess)": lambda p: preprocess(load_image(p), spec),
        "PIL + torchvision v2": lambda p: reference(pil_load(p)),
    }
    rows = []
    for name, files in _image_sets(args.data, args.limit_101).items():
        best = dict.fromkeys(paths, 0.0)
        for fn in paths.values():  # warm-up: imports, caches, first-call costs
            _round(fn, files[:10])
        for _ in range(args.rounds):
            for label, fn in paths.items():
                best[label] = max(best[label], _round(fn, files))
        ours, theirs = best.values()
        rows.append(
            {
                "images": name,
                "n": len(files),
                "opencv img/s": ours,
                "PIL+torchvision img/s": theirs,
                "ratio": ours / theirs,
            }
        )
        print(f"{name}: {ours:.0f} vs {theirs:.0f} img/s ({ours / theirs:.2f}x)", flush=True)
    columns = ["images", "n", "opencv img/s", "PIL+torchvision img/s", "ratio"]
    print()
    print(markdown_table(rows, columns))
    result = {
        "benchmark": "bench_preprocess",
        "image_size": spec.image_size,
        "resize_size": spec.resize_size,
        "threads": 1,
        "rounds": args.rounds,
        "rows": rows,
        "machine": machine_info(),
        "load_average": os.getloadavg(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
