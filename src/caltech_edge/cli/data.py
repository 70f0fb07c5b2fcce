"""``caltech-edge data synth|check|split|lst|rec``: a thin layer over caltech_edge.data."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="synthesize, check, split and convert datasets")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    p = sub.add_parser("synth", help="write a seeded SYNTHETIC dataset in the Caltech-256 layout")
    p.add_argument("root", type=Path)
    p.add_argument("--classes", type=int, default=5)
    p.add_argument("--per-class", type=int, default=20)
    p.add_argument("--size", type=int, default=96, help="image height in pixels")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_synth)

    p = sub.add_parser("check", help="decode every image; report classes, counts, bad files")
    _dataset_args(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_check)

    p = sub.add_parser("split", help="seeded stratified train/val/test split -> JSON")
    _dataset_args(p)
    p.add_argument("--train-per-class", type=int, default=30)
    p.add_argument("--val-per-class", type=int, default=0)
    p.add_argument("--test-per-class", type=int, default=None, help="cap (default: the rest)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-list", type=Path, help="published split: train file list")
    p.add_argument("--test-list", type=Path, help="published split: test file list")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=_split)

    p = sub.add_parser("lst", help="write an im2rec-compatible .lst file")
    _dataset_args(p)
    _subset_args(p)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=_lst)

    p = sub.add_parser("rec", help="write .lst + RecordIO .rec/.idx (SageMaker, MXNet)")
    _dataset_args(p)
    _subset_args(p)
    p.add_argument("--out", type=Path, required=True, help="prefix: writes OUT.lst/.rec/.idx")
    p.add_argument("--resize", type=int, default=0, help="shorter side in px (im2rec --resize)")
    p.add_argument("--center-crop", action="store_true", help="square center crop")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_rec)


def _dataset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", type=Path, help="dataset folder (or 256_ObjectCategories.tar)")
    p.add_argument("--drop-clutter", action="store_true", help="leave out 257.clutter")


def _subset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--split", type=Path, help="split JSON from `data split`")
    p.add_argument("--subset", default="train", choices=("train", "val", "test"))


def _open(args: argparse.Namespace):
    from ..data.datasets import open_dataset

    return open_dataset(args.root, drop_clutter=args.drop_clutter)


def _indices(args: argparse.Namespace, ds) -> list[int] | None:
    if args.split is None:
        return None
    from ..data.splits import Split

    return Split.load(args.split, dataset=ds).subset(args.subset)


def _synth(args: argparse.Namespace) -> int:
    from ..data.synth import synthesize

    base = synthesize(
        args.root, classes=args.classes, per_class=args.per_class, size=args.size, seed=args.seed
    )
    print(f"wrote a SYNTHETIC dataset: {args.classes} classes x {args.per_class} images in {base}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from ..data.report import check_dataset, format_report

    report = check_dataset(_open(args), progress=not (args.no_progress or args.json))
    if args.json:
        print_json(report)
    else:
        print(format_report(report))
    return 0


def _split(args: argparse.Namespace) -> int:
    from ..data.splits import make_split, split_from_files
    from ..errors import DatasetError

    ds = _open(args)
    if (args.train_list is None) != (args.test_list is None):
        raise DatasetError("give both --train-list and --test-list, or neither")
    if args.train_list is not None:
        split = split_from_files(ds, args.train_list, args.test_list)
    else:
        split = make_split(
            ds,
            train_per_class=args.train_per_class,
            val_per_class=args.val_per_class,
            test_per_class=args.test_per_class,
            seed=args.seed,
        )
    split.save(args.out)
    sizes = ", ".join(f"{k} {v}" for k, v in split.sizes.items())
    kind = " (SYNTHETIC data)" if ds.synthetic else ""
    print(f"{ds.name}{kind}: {sizes} -> {args.out}")
    return 0


def _lst(args: argparse.Namespace) -> int:
    from ..data.recordio import lst_entries, write_lst

    ds = _open(args)
    entries = lst_entries(ds, _indices(args, ds))
    write_lst(args.out, entries)
    print(f"wrote {len(entries)} entries -> {args.out}")
    return 0


def _rec(args: argparse.Namespace) -> int:
    from ..data.recordio import write_rec

    ds = _open(args)
    lst, rec, idx = write_rec(
        ds,
        args.out,
        indices=_indices(args, ds),
        resize=args.resize,
        center_crop=args.center_crop,
        quality=args.quality,
        progress=not args.no_progress,
    )
    print(f"wrote {lst}, {rec}, {idx}")
    return 0
