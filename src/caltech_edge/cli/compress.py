"""``caltech-edge quantize``, ``caltech-edge prune`` and ``caltech-edge compress report``."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from ..export.formats import get_format, quantizer_rows
from ._common import print_json


def register(sub: argparse._SubParsersAction) -> None:
    _add_quantize_parser(sub)
    _add_prune_parser(sub)
    _add_compress_parser(sub)


def _add_quantize_parser(sub: argparse._SubParsersAction) -> None:
    q = sub.add_parser(
        "quantize",
        help="post-training INT8 quantization of an exported model",
        description="Static INT8 of an ONNX model (ONNX Runtime QDQ, uint8 activations, "
        "per-channel int8 weights) or an OpenVINO IR (NNCF), calibrated on training images, "
        "then verified against its FP32 source by top-1 agreement. With no options the "
        "back end's recipes are tried in order on held-out calibration images (no labels "
        "needed) until one agrees with FP32 on --agreement-target of them.",
    )
    q.add_argument("source", type=Path, help=".onnx / .xml file, or an export directory")
    q.add_argument("--backend", choices=sorted(quantizer_rows()), default="onnxruntime")
    q.add_argument(
        "--calib-data",
        type=Path,
        required=True,
        help="images to calibrate on: a dataset (its training split is used) or any folder "
        "of images, flat or nested",
    )
    q.add_argument("--calib-size", type=int, default=300, help="calibration images (default 300)")
    q.add_argument("--split", type=Path, help="split.json of the training run (its train images)")
    q.add_argument(
        "--method",
        choices=("minmax", "entropy", "percentile"),
        default=None,
        help="ONNX Runtime activation-range method (default minmax)",
    )
    q.add_argument(
        "--max-drop",
        type=float,
        default=None,
        help="OpenVINO: accuracy-controlled quantization, max absolute top-1 drop (0.01 = 1 point)",
    )
    q.add_argument(
        "--exclude-classifier", action="store_true", help="keep the final layer in float"
    )
    q.add_argument(
        "--agreement-target",
        type=float,
        default=0.99,
        help="top-1 agreement with FP32 the recipe search aims for (default 0.99)",
    )
    q.add_argument("--recipe", default=None, help="run only this named recipe of the back end")
    q.add_argument("--no-verify", action="store_true", help="skip the top-1 agreement check")
    q.add_argument("--out", type=Path, required=True, help="output directory")
    q.set_defaults(func=_quantize)


def _add_prune_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prune",
        help="prune a torch training run (unstructured sparsity or real channel removal)",
        description="Global magnitude pruning (exact sparsity, zipped size shrinks) or, with "
        "--structured, channel removal with Torch-Pruning (fewer FLOPs, faster), optionally "
        "fine-tuned after each of --steps cuts. Writes a normal run directory.",
    )
    p.add_argument("run", type=Path, help="torch run directory (card.json + model.pt)")
    p.add_argument(
        "--amount", type=float, default=0.5, help="fraction of weights / channels to remove"
    )
    p.add_argument("--structured", action="store_true", help="remove whole channels")
    p.add_argument(
        "--steps", type=int, default=1, help="iterative prune -> fine-tune steps (structured)"
    )
    p.add_argument(
        "--finetune-epochs", type=int, default=0, help="fine-tune epochs after each step"
    )
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="fine-tune learning rate (default: a tenth of the run's)",
    )
    p.add_argument("--data", type=Path, help="dataset root, needed to fine-tune")
    p.add_argument(
        "--round-to",
        type=int,
        default=None,
        help="keep channel counts multiples of N (e.g. 8: SIMD-friendly widths)",
    )
    p.add_argument("--out", type=Path, required=True, help="new run directory")
    p.set_defaults(func=_prune)


def _add_compress_parser(sub: argparse._SubParsersAction) -> None:
    """``compress`` and its one sub-command, ``report``."""
    c = sub.add_parser("compress", help="compression reports")
    csub = c.add_subparsers(dest="compress_command", metavar="SUBCOMMAND", required=True)
    r = csub.add_parser(
        "report",
        help="FP32/FP16/INT8/pruned variants of a run: top-1, size, params, MACs, latency",
    )
    r.add_argument("run", type=Path)
    r.add_argument("--data", type=Path, required=True)
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--prune-amount", type=float, default=0.5)
    r.add_argument("--finetune-epochs", type=int, default=0)
    r.add_argument("--calib-size", type=int, default=300)
    r.add_argument("--test-limit", type=int, default=200)
    r.add_argument("--repeats", type=int, default=30, help="timed runs per variant")
    r.add_argument("--no-pruned", action="store_true")
    r.set_defaults(func=_report)


def _resolve_source(source: Path, backend: str) -> Path:
    from ..errors import ConfigError

    if source.is_file():
        return source
    folder = quantizer_rows()[backend].made_from  # the format row the INT8 row is made from
    name = get_format(folder).artifact
    for candidate in (source / folder / name, source / name):
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"{source}: no {name} for the {backend} back end (looked in {source / folder}); "
        "export the model first: caltech-edge export RUN --formats onnx,openvino --out DIR"
    )


def _quantize(args: argparse.Namespace) -> int:
    from .._io import atomic_write_json
    from ..compress._artifact import source_card
    from ..compress.quantize import quantize
    from ..data.calibration import calibration_reader, validation_batches

    src = _resolve_source(args.source, args.backend)
    card = source_card(src)
    calib = calibration_reader(
        args.calib_data,
        spec=card.preprocess,
        calib_size=args.calib_size,
        split=args.split,
        input_name=card.input_name or "data",
    )
    options = {
        "method": args.method,
        "exclude_classifier": args.exclude_classifier,
        "target": args.agreement_target,
        "recipe": args.recipe,
    }
    if args.max_drop is not None:
        options["max_drop"] = args.max_drop  # quantize() refuses it for onnxruntime
        if args.backend == "openvino":
            options["validation"] = validation_batches(
                args.calib_data, spec=card.preprocess, split=args.split, avoid=calib.indices
            )
    # NNCF draws progress bars on stdout; keep stdout for the one JSON document.
    with contextlib.redirect_stdout(sys.stderr):
        out = quantize(
            src, out=args.out, backend=args.backend, calibration=calib, card=card, **options
        )
    quant = source_card(out).extra.get("quantization") or {}
    result = {
        "artifact": out,
        "source": src,
        "backend": args.backend,
        "calibration_images": len(calib),
        **{k: quant[k] for k in ("recipe", "agreement", "recipes_tried") if k in quant},
    }
    if not args.no_verify:
        from ..export.verify import verify_artifact

        # a dataset verifies on its own images; a plain folder on the calibration images
        where = {"data": args.calib_data} if calib.indices else {"images": _stack(calib)}
        report = verify_artifact(out, against=src, **where)
        atomic_write_json(Path(args.out) / "verify.json", report.to_dict())
        result["verify"] = report.to_dict()
    print_json(result)
    return 0


def _stack(calib) -> object:
    import numpy as np

    return np.concatenate(list(calib))


def _prune(args: argparse.Namespace) -> int:
    import json

    from ..compress.prune_run import PRUNE_FILE, prune_run

    run = prune_run(
        args.run,
        out=args.out,
        amount=args.amount,
        structured=args.structured,
        steps=args.steps,
        finetune_epochs=args.finetune_epochs,
        data=args.data,
        learning_rate=args.lr,
        round_to=args.round_to,
    )
    print_json(json.loads((run.root / PRUNE_FILE).read_text()))
    return 0


def _report(args: argparse.Namespace) -> int:
    from ..compress.pipeline import compress_report

    result = compress_report(
        args.run,
        data=args.data,
        out=args.out,
        prune_amount=args.prune_amount,
        finetune_epochs=args.finetune_epochs,
        calib_size=args.calib_size,
        test_limit=args.test_limit,
        repeats=args.repeats,
        include_pruned=not args.no_pruned,
    )
    print_json(result)
    return 0
