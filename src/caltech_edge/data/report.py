"""``data check``: fully decode every image of a dataset and report what is usable.

The scan in :class:`~caltech_edge.data.datasets.ImageDataset` only reads headers and end
markers; this decodes every pixel (with a progress bar), so corrupt data inside an
otherwise well-formed file is found before training, not in epoch 7.
"""

from __future__ import annotations

from typing import Any

from .datasets import ImageDataset
from .imageio import ImageDecodeError, load_image


def check_dataset(
    dataset: ImageDataset, *, decode: bool = True, progress: bool = True
) -> dict[str, Any]:
    """A JSON-ready report: ``classes`` (count), ``images`` (usable count), ``per_class``
    (name -> usable count), ``skipped`` (list of ``{path, reason}``), ``name``, ``synthetic``.

    With ``decode``, files that fail a full decode are moved to ``dataset.skipped`` too.
    """
    if decode:
        from tqdm import tqdm

        for sample in tqdm(dataset.samples, desc="check", unit="img", disable=not progress):
            try:
                load_image(sample.path, max_pixels=dataset.max_pixels)
            except ImageDecodeError as exc:
                dataset.record_failure(sample.path, exc.reason)
    failed = {str(p) for p in dataset._failed}
    per_class = {name: 0 for name in dataset.classes}
    for sample in dataset.samples:
        if str(sample.path) not in failed:
            per_class[dataset.classes[sample.label]] += 1
    return {
        "name": dataset.name,
        "root": str(dataset.root),
        "synthetic": dataset.synthetic,
        "classes": len(dataset.classes),
        "images": sum(per_class.values()),
        "per_class": per_class,
        "skipped": [s.to_dict() for s in dataset.skipped],
    }


def format_report(report: dict[str, Any]) -> str:
    """The human-readable form of :func:`check_dataset`'s report."""
    kind = "SYNTHETIC dataset" if report["synthetic"] else "dataset"
    lines = [
        f"{report['name']} ({kind}) at {report['root']}",
        f"{report['classes']} classes, {report['images']} usable images, "
        f"{len(report['skipped'])} skipped",
    ]
    width = max((len(n) for n in report["per_class"]), default=0)
    lines += [f"  {name:<{width}}  {n}" for name, n in report["per_class"].items()]
    if report["skipped"]:
        lines.append("skipped files:")
        lines += [f"  {s['path']}: {s['reason']}" for s in report["skipped"]]
    return "\n".join(lines)
