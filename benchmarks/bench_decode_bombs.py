"""Peak memory of decoding hostile images: the old path vs the one decoder, same run.

Three small, valid files (built by :mod:`caltech_edge.data.bombs`): a 60000x8 PNG and a
300000x8 PNG (aspect-ratio bombs: tiny when decoded, huge after the resize of the short
side to 256) and a 12000x12000 deflate TIFF (a decompression bomb). For each, a fresh
child process reports its resident-memory high-water mark (``VmHWM``) after imports and
after handling the file:

* ``before``: what serve and the infer folder source did: ``cv2.imdecode`` (the old
  header check covered JPEG/PNG pixel counts only, no aspect bound), then the reference
  resize of the short side to 256 (what ``preprocess`` did next);
* ``after``: :func:`caltech_edge.data.imageio.decode_image` then ``preprocess``.

Each child runs under an address-space cap (``--cap-gb`` above its baseline) so the
300000x8 case, which needs 7.4 GB the old way, fails inside the cap instead of taking a
shared machine down; the table says so.

    python benchmarks/bench_decode_bombs.py [--cap-gb 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

from caltech_edge._bench import machine_info, markdown_table

REPO = Path(__file__).resolve().parents[1]
CASES = {
    "png 60000x8": ("png", 60000, 8),
    "png 300000x8": ("png", 300000, 8),
    "tiff 12000x12000 deflate": ("tiff", 12000, 12000),
}


def _hwm_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _vm_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _child(case: str, mode: str, cap_gb: float) -> dict:
    """Runs in a fresh process: build the file, cap memory, handle it, report peaks."""
    import cv2
    import numpy as np

    from caltech_edge.data.bombs import png_bomb, tiff_bomb
    from caltech_edge.data.imageio import ImageDecodeError, decode_image
    from caltech_edge.data.transforms import PreprocessSpec, preprocess

    kind, width, height = CASES[case]
    data = png_bomb(width, height) if kind == "png" else tiff_bomb(width, height)
    spec = PreprocessSpec(image_size=224)
    cv2.setNumThreads(1)
    cap = _vm_bytes() + int(cap_gb * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    baseline = _hwm_mb()
    outcome = "decoded"
    try:
        if mode == "before":
            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            h, w = img.shape[:2]
            side = spec.resize_size
            size = (int(side * w / h), side) if h <= w else (side, int(side * h / w))
            resized = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
            outcome = f"resized to {resized.shape[1]}x{resized.shape[0]}"
        else:
            preprocess(decode_image(data), spec)
    except ImageDecodeError as exc:
        outcome = "refused from the header: " + exc.reason.split(" (")[0]
    except (MemoryError, cv2.error) as exc:
        outcome = f"failed at the {cap_gb:g} GB cap ({type(exc).__name__})"
    return {
        "file_bytes": len(data),
        "baseline_mb": baseline,
        "peak_mb": _hwm_mb(),
        "outcome": outcome,
    }


def _needs_mb(case: str, resize: int = 256) -> float:
    """Decoded plus resized RGB bytes the old path asks for, in MB."""
    _, width, height = CASES[case]
    short, long_ = min(width, height), max(width, height)
    return (width * height + resize * int(resize * long_ / short)) * 3 / (1 << 20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cap-gb", type=float, default=3.0, help="memory cap per child (GB)")
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "bench_decode_bombs.json"
    )
    parser.add_argument("--child", nargs=2, metavar=("CASE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child[0], args.child[1], args.cap_gb)))
        return
    rows = []
    for case in CASES:
        for mode in ("before", "after"):
            proc = subprocess.run(
                [sys.executable, __file__, "--cap-gb", str(args.cap_gb), "--child", case, mode],
                capture_output=True,
                text=True,
                timeout=600,
                env=dict(os.environ, OMP_NUM_THREADS="1"),
            )
            if proc.returncode != 0:
                result = {"outcome": f"child died (rc {proc.returncode})"}
            else:
                result = json.loads(proc.stdout.strip().splitlines()[-1])
            row = {"file": case, "path": mode, **result}
            row["added_mb"] = row.get("peak_mb", 0.0) - row.get("baseline_mb", 0.0)
            row["old_path_needs_mb"] = _needs_mb(case)
            rows.append(row)
            print(f"{case} {mode}: {row['outcome']}, +{row['added_mb']:.0f} MB", flush=True)
    columns = ["file", "file_bytes", "old_path_needs_mb", "path", "peak_mb", "added_mb", "outcome"]
    print()
    print(markdown_table(rows, columns))
    result = {
        "benchmark": "bench_decode_bombs",
        "cap_gb": args.cap_gb,
        "rows": rows,
        "machine": machine_info(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
