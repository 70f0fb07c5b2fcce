"""``caltech-edge retrain`` and ``caltech-edge data review|merge``: the retraining arrow.

``data review``/``data merge`` are added to the ``data`` command from here (the ``data``
module stays untouched). Thin: the work is in ``caltech_edge.cloud.review``/``retrain``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "retrain",
        help="fine-tune a run on a merged dataset, compare on the same held-out split, export "
        "and deploy only if not worse",
    )
    p.add_argument("run", type=Path, help="the previous run directory")
    p.add_argument("--data", type=Path, required=True, help="the dataset with merged captures")
    p.add_argument("--out", type=Path, required=True, help="the new run directory")
    p.add_argument("--epochs", type=int, help="default: the previous run's")
    p.add_argument("--lr", type=float, help="learning rate (default: the previous run's)")
    p.add_argument("--tolerance", type=float, default=0.0, help="allowed top-1 drop")
    p.add_argument("--formats", default="onnx", help="export formats (default onnx)")
    p.add_argument(
        "--device", action="append", default=[], help="deploy to this thing if not worse"
    )
    p.add_argument("--group", action="append", default=[], help="deploy to this group if not worse")
    p.add_argument("--mqtt-host", default="127.0.0.1")
    p.add_argument("--mqtt-port", type=int, default=1883)
    p.add_argument("--wait", type=float, default=600.0)
    p.set_defaults(func=_retrain)
    _extend_data(sub)


def _extend_data(sub: Any) -> None:
    data = sub.choices.get("data")
    if data is None:  # pragma: no cover - data is registered first
        return
    actions = [a for a in data._actions if isinstance(a, argparse._SubParsersAction)]
    inner = actions[0]
    r = inner.add_parser(
        "review", help="list captured frames in DIR/review.csv; accept, relabel, reject"
    )
    r.add_argument("dir", type=Path, help="capture folder or cloud review area")
    r.add_argument(
        "--accept-all", action="store_true", help="accept every pending row with its label"
    )
    r.add_argument(
        "--set", action="append", default=[], metavar="IMAGE=LABEL", help="relabel and accept"
    )
    r.add_argument("--reject", action="append", default=[], metavar="IMAGE")
    r.set_defaults(func=_review)
    m = inner.add_parser(
        "merge", help="merge accepted captures into a dataset (content-hash de-dup)"
    )
    m.add_argument("reviewed", type=Path)
    m.add_argument("--into", type=Path, required=True, help="dataset root")
    m.set_defaults(func=_merge)


def _review(args: argparse.Namespace) -> int:
    from ..cloud.review import review, summary
    from ..errors import ConfigError

    labels = {}
    for item in args.set:
        image, sep, label = item.partition("=")
        if not sep or not label:
            raise ConfigError(f"--set expects IMAGE=LABEL, got {item!r}")
        labels[image] = label
    rows = review(args.dir, accept_all=args.accept_all, labels=labels, reject=args.reject)
    counts, pending = summary(rows)
    for row in pending[:20]:
        print("pending  {image}  predicted {predicted} ({probability})".format(**row))
    print(json.dumps(dict(counts, file=str(args.dir / "review.csv"))))
    return 0


def _merge(args: argparse.Namespace) -> int:
    from ..cloud.review import merge

    print(json.dumps(merge(args.reviewed, into=args.into)))
    return 0


def _retrain(args: argparse.Namespace) -> int:
    from ..cloud.retrain import comparison_table, retrain

    report = retrain(
        args.run,
        data=args.data,
        out=args.out,
        epochs=args.epochs,
        learning_rate=args.lr,
        tolerance=args.tolerance,
        formats=args.formats,
        progress=sys.stderr.isatty(),
    )
    print(comparison_table(report), file=sys.stderr)
    exported = report.get("export") or {}
    if report["not_worse"] and exported.get("verified") and (args.device or args.group):
        from ..deploy.publisher import deploy

        onnx = exported["artifacts"].get("onnx") or next(iter(exported["artifacts"].values()))
        out = deploy(
            Path(onnx),
            things=args.device,
            groups=args.group,
            host=args.mqtt_host,
            port=args.mqtt_port,
            wait=args.wait,
        )
        report["deploy"] = {"jobId": out["job"]["jobId"], "statuses": out["statuses"]}
        from .._io import atomic_write_json

        atomic_write_json(Path(report["new_run"]) / "retrain.json", report)
    print(json.dumps(report))
    return 0
