"""``caltech-edge toolchain list | install NAME | doctor | clean``: the isolated environments."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "toolchain",
        help="list, install, check or clean the isolated toolchain environments (MXNet)",
        description=(
            "Converters whose dependencies cannot share the core (MXNet 1.9.1 needs numpy < 1.24) "
            "run in named environments cached under the user cache dir, built on first need or "
            "here, with uv when it is installed (else venv + pip)."
        ),
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = actions.add_parser("list", help="the registered toolchains and what needs them")
    ls.set_defaults(func=_list)
    inst = actions.add_parser("install", help="build a toolchain environment now")
    inst.add_argument("name", nargs="+", help="toolchain name(s), e.g. mxnet")
    inst.add_argument("--force", action="store_true", help="rebuild even when it is ready")
    inst.set_defaults(func=_install)
    doc = actions.add_parser("doctor", help="what exists, versions, sizes, missing or stale")
    doc.add_argument("--json", action="store_true", help="print JSON instead of a table")
    doc.set_defaults(func=_doctor)
    cl = actions.add_parser("clean", help="remove stale environments (--all: every one)")
    cl.add_argument("name", nargs="*", help="toolchain name(s) (default: all)")
    cl.add_argument("--all", action="store_true", help="also remove the current environments")
    cl.set_defaults(func=_clean)


def _list(args: argparse.Namespace) -> int:
    from ..toolchains.table import TOOLCHAINS

    for entry in TOOLCHAINS:
        tc = entry.load()
        print(f"{tc.name}: {tc.description}")
        print(f"  requirements: {' '.join(tc.requirements)}")
        print(f"  formats: {', '.join(tc.formats) or '-'}   frameworks: "
              f"{', '.join(tc.frameworks) or '-'}")  # fmt: skip
    return 0


def _install(args: argparse.Namespace) -> int:
    from ..toolchains.env import build, status
    from ..toolchains.table import get_toolchain

    for name in args.name:
        tc = get_toolchain(name)
        started = time.perf_counter()
        env = build(tc, force=args.force)
        state = status(tc)
        took = time.perf_counter() - started
        print(f"{tc.name}: ready at {env} ({state.size_bytes / 1e6:.0f} MB, {took:.1f} s)")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from ..toolchains.env import cache_root, find_uv, status
    from ..toolchains.table import TOOLCHAINS

    states = [status(entry.load()) for entry in TOOLCHAINS]
    if args.json:
        from ._common import print_json

        print_json({"root": str(cache_root()), "uv": find_uv(), "toolchains": states})
        return 0 if all(s.ready for s in states) else 1
    print(f"toolchain root: {cache_root()}")
    print(f"builder: {find_uv() or 'venv + pip (uv not found)'}")
    for s, entry in zip(states, TOOLCHAINS):
        tc = entry.load()
        where = "in-process (importable here)" if tc.in_process() else "isolated"
        if s.ready:
            print(f"{s.name}: ready  {s.size_bytes / 1e6:.0f} MB  built {s.built} "
                  f"in {s.build_seconds} s  [{where}]")  # fmt: skip
            print(f"  {s.path}")
            print("  " + "  ".join(f"{k} {v}" for k, v in s.versions.items()))
        else:
            print(f"{s.name}: MISSING  [{where}]  build it with: caltech-edge toolchain "
                  f"install {s.name}")  # fmt: skip
        for old in s.stale:
            print(f"  stale: {old} (remove with: caltech-edge toolchain clean {s.name})")
    missing = [s.name for s in states if not s.ready]
    if missing:
        print(f"missing: {', '.join(missing)}", file=sys.stderr)
    return 0 if not missing else 1


def _clean(args: argparse.Namespace) -> int:
    from ..toolchains.env import clean
    from ..toolchains.table import TOOLCHAINS, get_toolchain

    names = args.name or list(TOOLCHAINS.names())
    removed = [p for n in names for p in clean(get_toolchain(n), everything=args.all)]
    for path in removed:
        print(f"removed {path}")
    if not removed:
        print("nothing to remove")
    return 0
