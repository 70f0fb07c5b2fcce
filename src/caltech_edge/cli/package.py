"""``caltech-edge package EXPORT_DIR --target T --out DIR``: one device bundle.

Kept out of ``cli/runtime.py``, which ships inside the bundles themselves: a device runs
``infer``/``serve``, never ``package``.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    from ..export.bundles import TARGETS

    p = sub.add_parser(
        "package",
        help="device bundle: " + ", ".join(TARGETS.names()),
        description="Bundle checked models, the runtime, pinned requirements and start "
        "scripts for one device (docs/devices.md); deeplens = model.tar.gz + Lambda zip.",
    )
    p.add_argument("export_dir", help="an export directory (caltech-edge export --out)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument(
        "--target",
        default="deeplens",
        help="device (the bundles registry): " + ", ".join(TARGETS.names()),
    )
    p.set_defaults(func=_package)


def _package(args: argparse.Namespace) -> int:
    from ..export.bundles import package_target
    from ._common import print_json

    print_json(package_target(args.export_dir, target=args.target, out=args.out))
    return 0
