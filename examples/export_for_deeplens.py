"""Export a classifier for an AWS DeepLens-style camera and prove every file is faithful.

    python examples/export_for_deeplens.py [OUT_DIR] [--images 0] [--package]

Defaults to the real SqueezeNet 1.1 Caltech-256 weights in ``../shared/data`` and the
real sample images there; pass ``--checkpoint/--arch/--classes/--data`` for your own
model (a torchvision state dict). Writes ONNX, MXNet symbol/params (what DeepLens
imported), OpenVINO IR FP32 and FP16 (what its GPU ran), verifies each against PyTorch on
the images, prints agreement and accuracy, and with ``--package`` builds the DeepLens
``model.tar.gz`` + Lambda zip from the MXNet files.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

from caltech_edge.export import export
from caltech_edge.export.formats import DEFAULT_FORMATS
from caltech_edge.export.pipeline import load_checkpoint_source

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, default=None)
    parser.add_argument(
        "--checkpoint", type=Path, default=SHARED / "weights" / "squeezenet1_1_caltech256.pth"
    )
    parser.add_argument("--arch", default="squeezenet1_1")
    parser.add_argument(
        "--classes",
        type=Path,
        default=SHARED / "weights" / "squeezenet1_1_caltech256_idx_to_class.txt",
    )
    parser.add_argument("--data", type=Path, default=SHARED / "caltech256-sample")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--images", type=int, default=0, help="verification images (0 = all)")
    parser.add_argument("--to", default=",".join(DEFAULT_FORMATS))
    parser.add_argument("--package", action="store_true", help="also build the DeepLens files")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not args.checkpoint.is_file():
        parser.error(f"{args.checkpoint} not found: pass --checkpoint FILE --classes FILE")
    out = args.out or Path(tempfile.mkdtemp(prefix="caltech-edge-export-"))

    source = load_checkpoint_source(
        args.checkpoint, args.arch, args.classes, image_size=args.image_size
    )
    result = export(
        source, formats=args.to, out=out, data=args.data, verify_images=args.images or None
    )

    rows = []
    header = f"{'format':<14} {'backend':<12} {'prec':<5} {'max|diff|':>10} {'cosine':>9} "
    header += f"{'top-1 agree':>11} {'acc':>6} {'torch acc':>9} {'OV default agree':>16}"
    print(header)
    for name, report in result.reports.items():
        fast = report.extra.get("device_default_mode", {}).get("top1_agreement")
        acc = report.artifact_accuracy
        src = report.source_accuracy
        print(
            f"{name:<14} {report.backend:<12} {report.precision:<5} "
            f"{report.max_abs_diff:>10.2e} {report.cosine:>9.6f} {report.top1_agreement:>11.4f} "
            f"{(acc if acc is not None else float('nan')):>6.3f} "
            f"{(src if src is not None else float('nan')):>9.3f} "
            f"{(f'{fast:.4f}' if fast is not None else '-'):>16}"
        )
        rows.append(report.to_dict())
    print(f"{rows[0]['images']} images from {rows[0]['data']}; artifacts and export.json in {out}")
    (out / "agreement.json").write_text(json.dumps(rows, indent=2) + "\n")

    if args.package:
        from caltech_edge.export.package import package

        tar, zip_ = package(out, out=out / "deeplens")
        print(f"DeepLens model archive: {tar}\nLambda deployment zip: {zip_}")


if __name__ == "__main__":
    main()
