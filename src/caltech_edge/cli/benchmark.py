"""``caltech-edge benchmark``: every format side by side with PyTorch and raw ONNX Runtime."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._common import print_json


def register(sub: Any) -> None:
    p = sub.add_parser(
        "benchmark",
        help="size, top-1 and latency of every exported format vs PyTorch and raw ONNX Runtime",
        description=(
            "SOURCE is an export directory (caltech-edge export --out) or a run directory "
            "(exported into RUN/export first). Baselines measured in the same run: PyTorch "
            "eager FP32 of the same weights and a bare onnxruntime.InferenceSession."
        ),
    )
    p.add_argument("source", type=Path, metavar="ARTIFACT_OR_RUN")
    p.add_argument("--data", type=Path, help="dataset for top-1 (the run's test split)")
    p.add_argument("--formats", help="comma-separated subset of the exported formats")
    p.add_argument("--iters", type=int, default=50, help="timed calls per format")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--max-images", type=int, default=200, help="test images for top-1")
    p.add_argument("--threads", type=int, help="inference threads (default: all cores)")
    p.add_argument("--no-baselines", action="store_true")
    p.add_argument("--out", type=Path, help="write benchmark.json/.md and the PNG plot here")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_benchmark)


def _benchmark(args: argparse.Namespace) -> int:
    from ..benchmark import benchmark

    result = benchmark(
        args.source,
        data=args.data,
        formats=args.formats.split(",") if args.formats else None,
        iters=args.iters,
        warmup=args.warmup,
        max_images=args.max_images,
        baselines=not args.no_baselines,
        threads=args.threads,
    )
    if args.out:
        result.save(args.out)
    if args.json:
        print_json(result.to_dict())
    else:
        print(result.markdown())
    return 0
