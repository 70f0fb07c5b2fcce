"""``caltech-edge export`` and ``caltech-edge verify``: thin layers over caltech_edge.export."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError
from ._common import print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..export.formats import DEFAULT_FORMATS, formats_help

    p = subparsers.add_parser(
        "export",
        help="export a run (or a checkpoint) to ONNX, MXNet and OpenVINO, verified",
        description="Export a trained model to device formats; every artifact is verified "
        "against its source on real images (--data) before the command succeeds.",
        epilog="formats:\n" + formats_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", nargs="?", type=Path, help="run directory written by caltech-edge train")
    p.add_argument(
        "--to",
        default=",".join(DEFAULT_FORMATS),
        help="comma-separated formats (default: %(default)s)",
    )
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--opset", type=int, default=13, help="ONNX opset (default: %(default)s)")
    p.add_argument("--dynamic-batch", action="store_true", help="dynamic batch axis")
    p.add_argument("--data", type=Path, help="dataset root for verification (and INT8 calibration)")
    p.add_argument("--images", type=int, default=48, help="verification images (0 = all)")
    p.add_argument("--no-verify", action="store_true", help="skip verification (not advised)")
    p.add_argument(
        "--checkpoint",
        type=Path,
        help="weights trained elsewhere: a torchvision state dict, or Gluon .params",
    )
    p.add_argument("--arch", help="architecture of --checkpoint (e.g. squeezenet1_1, resnet18)")
    p.add_argument("--classes", type=Path, help="class names of --checkpoint, one per line")
    p.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="input size of --checkpoint (default: the arch's own, e.g. 224; 240 for efficientnet_lite1)",
    )
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="FORMAT.KEY=VALUE",
        help="a producer option of one row, e.g. tflite-int8.io_type=uint8 or "
        "onnx-int8.recipe=minmax-float-logits (repeatable)",
    )
    p.add_argument("--json", action="store_true", help="print the export summary as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_export)

    p = subparsers.add_parser(
        "verify",
        help="re-check an exported artifact against its run or another artifact",
        description="Run ARTIFACT and the source on the same preprocessed images and compare "
        "logits (max |diff|, cosine, top-1 agreement) with the tolerance of its precision.",
    )
    p.add_argument("artifact", type=Path, help=".onnx, .xml, -symbol.json or an MXNet folder")
    p.add_argument("--against", type=Path, required=True, help="run directory or artifact")
    p.add_argument("--data", type=Path, help="dataset root with real images")
    p.add_argument("--images", type=int, default=48, help="number of images (0 = all)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_verify)


def _source(args: argparse.Namespace) -> object:
    triple = (args.checkpoint, args.arch, args.classes)
    if args.checkpoint is None:
        if args.arch or args.classes:
            raise ConfigError("--arch/--classes describe a --checkpoint; pass --checkpoint FILE")
        if args.run is None:
            raise ConfigError(
                "nothing to export: give a RUN directory, or --checkpoint FILE --arch ARCH "
                "--classes CLASSES.txt"
            )
        return args.run
    if args.run is not None:
        raise ConfigError("give either a RUN directory or --checkpoint, not both")
    if not args.arch or not args.classes:
        raise ConfigError("--checkpoint needs --arch (e.g. squeezenet1_1) and --classes FILE")
    from ..export.pipeline import load_checkpoint_source

    workdir = args.out / "source" if args.checkpoint.suffix == ".params" else None
    return load_checkpoint_source(*triple, image_size=args.image_size, workdir=workdir)


def parse_options(items: list[str]) -> dict[str, dict[str, object]]:
    """``["tflite-int8.io_type=uint8", ...]`` -> ``{"tflite-int8": {"io_type": "uint8"}}``.

    Values are read as JSON when they parse (numbers, true/false, null), else as text.
    """
    import json

    out: dict[str, dict[str, object]] = {}
    for item in items:
        key, eq, text = item.partition("=")
        name, dot, option = key.partition(".")
        if not (eq and dot and name and option):
            raise ConfigError(
                f"--option expects FORMAT.KEY=VALUE (e.g. tflite-int8.io_type=uint8), got {item!r}"
            )
        try:
            value: object = json.loads(text)
        except ValueError:
            value = text
        out.setdefault(name, {})[option] = value
    return out


def _export(args: argparse.Namespace) -> int:
    from ..export.formats import parse_formats
    from ..export.onnx import check_opset
    from ..export.pipeline import export

    formats = [f.name for f in parse_formats(args.to)]  # bad names fail before any work
    check_opset(args.opset)
    result = export(
        _source(args),
        formats=formats,
        out=args.out,
        opset=args.opset,
        dynamic_batch=args.dynamic_batch,
        verify=not args.no_verify,
        data=args.data,
        verify_images=args.images or None,
        progress=not args.no_progress,
        options=parse_options(args.option),
    )
    if args.json:
        import json

        print_json(json.loads(result.summary.read_text()))
        return 0
    for name, path in result.artifacts.items():
        report = result.reports.get(name)
        print(f"{name:<14} {path}")
        if report is not None:
            print(f"{'':<14} {report.summary()}")
    print(f"summary: {result.summary}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from ..export.verify import verify_artifact

    report = verify_artifact(
        args.artifact, against=args.against, data=args.data, limit=args.images or None, check=False
    )
    if args.json:
        print_json(report.to_dict())
    else:
        print(report.summary())
    return 0 if report.passed else 1
