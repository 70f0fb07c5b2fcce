"""A tour of caltech_edge.data: synthesize, check, split, load batches, write RecordIO.

    python examples/data_tour.py [OUT_DIR] [--real ../shared/data/caltech256-sample]

Runs on generated (SYNTHETIC) data by default; pass --real to open a real image tree.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from caltech_edge.data.augment import AugmentSpec
from caltech_edge.data.datasets import open_dataset
from caltech_edge.data.loader import iter_batches
from caltech_edge.data.recordio import write_rec
from caltech_edge.data.report import check_dataset, format_report
from caltech_edge.data.splits import Split, make_split
from caltech_edge.data.synth import synthesize
from caltech_edge.data.transforms import PreprocessSpec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, default=None)
    parser.add_argument("--real", type=Path, help="a real dataset folder instead")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="caltech-edge-tour-"))

    root = args.real or out / "synthetic"
    if args.real is None:
        synthesize(root, classes=4, per_class=12, size=64, seed=0)
    ds = open_dataset(root)
    print(format_report(check_dataset(ds, progress=False)))

    split = make_split(ds, train_per_class=6, val_per_class=2, seed=0)
    split = Split.load(split.save(out / "split.json"), dataset=ds)
    print("split sizes:", split.sizes)

    spec = PreprocessSpec(image_size=48)
    batches = iter_batches(ds, split.train, spec, batch_size=8, shuffle=True,
                           augment=AugmentSpec.from_sagemaker("crop_color"))  # fmt: skip
    x, y = next(batches)
    print(f"one augmented training batch: {x.shape} {x.dtype}, labels {y.tolist()}")

    lst, rec, idx = write_rec(ds, out / "rec" / "train", indices=split.train, resize=64,
                              progress=False)  # fmt: skip
    print(
        f"RecordIO for SageMaker/MXNet: {lst.name}, {rec.name} ({rec.stat().st_size} bytes), {idx.name}"
    )
    print(f"everything is in {out}")


if __name__ == "__main__":
    main()
