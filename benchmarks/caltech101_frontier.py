"""The accuracy/speed frontier of the fine-tuned Caltech-101 EfficientNet-Lite0 (issue 12).

Baseline: the fine-tuned run in FP32 PyTorch eager, batch 1 (what "15x faster" is measured
against). Then that run and each structured-pruned + fine-tuned copy of it through every
INT8 format (each calibrated by its own accuracy-aware recipe search on the run's training
split and verified by ``export``), all judged on the same test images of the run's split
and timed in interleaved rounds, so the ratios come from one run on one machine::

    caltech-edge prune RUN --structured --amount 0.5 --round-to 8 --finetune-epochs 3 \\
        --data ../shared/data/caltech101 --out PRUNED
    python benchmarks/caltech101_frontier.py --run RUN --pruned PRUNED \\
        --data ../shared/data/caltech101

Writes ``report.md``, ``report.json`` and ``accuracy_vs_latency.png`` under ``--out`` and
prints the table, then the best row that keeps top-1 within ``--max-drop`` points of the
baseline with its speed-up (the issue's target: >= 15x at <= 1 point). Exports are kept
under ``--work`` and reused when their ``export.json`` is there, so a rerun only measures.
Run it alone: the 2-core machine is easily disturbed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INT8 = "onnx-int8,openvino-int8,tflite-int8,executorch-int8,onnx-trt-int8"


def exported(run, work: Path, data: Path, formats: str) -> dict[str, Path]:
    """The artifacts of ``formats`` for ``run`` that passed verification.

    A finished export under ``work`` holding every row is reused. A row that fails verification (``export``
    writes its summary, then raises) is left out of the table and named on stderr: the
    frontier shows what can be deployed, and says what could not.
    """
    import sys

    from caltech_edge.errors import VerificationError
    from caltech_edge.export.pipeline import export

    summary = work / "export.json"
    done = set(json.loads(summary.read_text())["formats"]) if summary.is_file() else set()
    if not set(formats.split(",")) <= done:  # new, or asked for rows it does not have
        try:
            export(run, formats=formats, out=work, data=data, progress=True)
        except VerificationError as exc:
            print(f"{run.root}: {exc}", file=sys.stderr)
    rows = json.loads(summary.read_text())["formats"]
    for name, row in rows.items():
        if not (row.get("verification") or {}).get("passed"):
            print(f"{run.root}: {name} failed verification; not in the table", file=sys.stderr)
    return {
        name: work / row["artifact"]
        for name, row in rows.items()
        if (row.get("verification") or {}).get("passed")
    }


def variants_of(run, tag: str, work: Path, data: Path, formats: str) -> list:
    """The FP32 eager row and one row per verified artifact of ``run`` in ``formats``."""
    from caltech_edge.compress.pipeline import recipe_note
    from caltech_edge.compress.prune import count_macs, count_parameters
    from caltech_edge.compress.report import Variant
    from caltech_edge.export.formats import FORMATS
    from caltech_edge.rundir import load_torch_model

    model, card = load_torch_model(run)
    common = {
        "params": count_parameters(model),
        "macs": count_macs(model, card.preprocess.image_size),
    }
    rows = [Variant(f"{tag}FP32 torch eager", model=model, **common)]
    for name, path in exported(run, work, data, formats).items():
        if name not in formats.split(","):
            continue  # a dependency (the FP32 ONNX or IR the INT8 row was made from)
        rows.append(
            Variant(
                f"{tag}{name}",
                artifact=path,
                backend=FORMATS[name].backend,
                precision=FORMATS[name].precision,
                note=recipe_note(path),
                **common,
            )
        )
    return rows


def main() -> None:
    from caltech_edge.compress.pipeline import test_images
    from caltech_edge.compress.report import measure_variants, write_report
    from caltech_edge.rundir import RunDir

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=Path("/tmp/caltech101_effnet_run"))
    ap.add_argument("--pruned", type=Path, nargs="*", default=[], help="pruned runs of --run")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared/data/caltech101")
    ap.add_argument("--formats", default=INT8, help="comma-separated rows to build per run")
    ap.add_argument("--test-images", type=int, default=0, help="0 = the whole test split")
    ap.add_argument("--repeats", type=int, default=50, help="timed calls per row and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-drop", type=float, default=1.0, help="points of top-1")
    ap.add_argument("--work", type=Path, default=Path("/tmp/caltech101_frontier"))
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/caltech101_frontier")
    args = ap.parse_args()

    run = RunDir(args.run)
    variants = variants_of(run, "", args.work / "base", args.data, args.formats)
    for pruned in map(RunDir, args.pruned):
        amount = json.loads((pruned.root / "prune.json").read_text())["amount"]
        tag = f"pruned-{round(100 * amount)}% "
        work = args.work / pruned.root.name
        variants += variants_of(pruned, tag, work, args.data, args.formats)
    images, labels = test_images(run, args.data, limit=args.test_images or None)
    rows = measure_variants(
        variants,
        images=images,
        labels=labels,
        repeats=args.repeats,
        rounds=args.rounds,
        threads=args.threads,
    )
    info = {"run": str(run.root), "pruned": [str(p) for p in args.pruned]}
    paths = write_report(rows, args.out, title="Caltech-101 EfficientNet-Lite0 frontier", info=info)
    print(Path(paths["markdown"]).read_text())
    base = rows[0]
    kept = [r for r in rows if 100 * (base["top1"] - r["top1"]) <= args.max_drop]
    best = min(kept, key=lambda r: r["latency_ms"])
    print(
        f"best within {args.max_drop} pt: {best['variant']} {100 * best['top1']:.2f}% "
        f"({100 * (best['top1'] - base['top1']):+.2f} pt), "
        f"{base['latency_ms'] / best['latency_ms']:.1f}x faster than {base['variant']}"
    )
    fastest = min(rows, key=lambda r: r["latency_ms"])
    print(
        f"fastest: {fastest['variant']} {100 * fastest['top1']:.2f}% "
        f"({100 * (fastest['top1'] - base['top1']):+.2f} pt), "
        f"{base['latency_ms'] / fastest['latency_ms']:.1f}x"
    )


if __name__ == "__main__":
    main()
