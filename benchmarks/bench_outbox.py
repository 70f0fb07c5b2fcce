"""What "nothing lost" costs per result, and what the startup integrity check costs.

Every result the device publishes over MQTT takes a sequence id (``Sequencer.next``: one
fsync'd SQLite statement holding ``next_seq`` and ``done``) and is committed to the outbox
(``DiskBuffer.put``: one fsync'd transaction holding the message, its counters and the
high-water mark). Measured side by side in one process, the variants interleaved call by
call (order rotated), so all see the same disk load; medians over ``--results`` x
``--rounds`` calls (the machine and its disk are shared):

* ``sqlite floor``: one bare ``INSERT`` per fsync'd transaction in the same WAL/FULL mode,
  the least any durable per-result write can cost on this disk;
* ``Sequencer.next``, ``DiskBuffer.put`` and both together (the device's per-result cost),
  with the ratio to the floor: once with the id persisted by the sequencer *and* the
  outbox (without MQTT, and before this benchmark existed), once with the sequencer
  attached to the outbox (``Sequencer(outbox=...)``, what ``infer --mqtt-host`` does).

Then the cost of opening an outbox holding N messages (``PRAGMA quick_check`` plus the
recount), which a restarting device pays once.

    python benchmarks/bench_outbox.py [--results 300] [--rounds 5] [--dir DIR]

Writes ``benchmarks/results/bench_outbox.json`` and prints markdown tables. Use a
directory on the device's real storage (``--dir``): on tmpfs an fsync costs nothing.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from caltech_edge.runtime.buffer import DiskBuffer, Sequencer
from caltech_edge.runtime.state import connect

REPO = Path(__file__).resolve().parents[1]
PAYLOAD = b"x" * 850  # a typical top-5 result payload


class _Floor:
    """A bare fsync'd SQLite insert per call: the least a durable per-result write costs."""

    def __init__(self, d: Path) -> None:
        self.conn = connect(d / "floor.sqlite")
        self.conn.execute("CREATE TABLE q (seq INTEGER PRIMARY KEY, payload BLOB)")
        self.i = 0

    def __call__(self) -> None:
        self.i += 1
        self.conn.execute("INSERT INTO q VALUES(?, ?)", (self.i, PAYLOAD))

    def close(self) -> None:
        self.conn.close()


class _Device:
    """What the device does per result: some of ``Sequencer.next`` and ``DiskBuffer.put``."""

    def __init__(self, d: Path, *, seq: bool, put: bool, attach: bool = False) -> None:
        self.buf = DiskBuffer(d / "outbox.sqlite") if put else None
        outbox = self.buf if attach else None
        self.seq = Sequencer(d / "sequence.sqlite", outbox=outbox) if seq else None
        self.i = 0

    def __call__(self) -> None:
        self.i += 1
        n = self.seq.next() if self.seq is not None else self.i
        if self.buf is not None:
            self.buf.put(n, "t", PAYLOAD)

    def close(self) -> None:
        for part in (self.seq, self.buf):
            if part is not None:
                part.close()


VARIANTS = {
    "sqlite floor": _Floor,
    "Sequencer.next": lambda d: _Device(d, seq=True, put=False),
    "DiskBuffer.put": lambda d: _Device(d, seq=False, put=True),
    "next + put (id persisted twice)": lambda d: _Device(d, seq=True, put=True),
    "next + put (id in the outbox)": lambda d: _Device(d, seq=True, put=True, attach=True),
}


def _interleaved(root: Path, n: int, rounds: int) -> dict:
    """Median ms per call of each variant, the variants interleaved call by call (order
    rotated each time) so that all of them see the same disk: on a shared machine an
    fsync's latency depends on everyone's I/O at that moment."""
    names = list(VARIANTS)
    samples: dict = {name: [] for name in names}
    for r in range(rounds):
        parts = {}
        for k, name in enumerate(names):
            d = root / f"round{r}" / str(k)
            d.mkdir(parents=True)
            parts[name] = VARIANTS[name](d)
        for i in range(n):
            shift = i % len(names)
            for name in names[shift:] + names[:shift]:
                t0 = time.perf_counter()
                parts[name]()
                samples[name].append((time.perf_counter() - t0) * 1e3)
        for part in parts.values():
            part.close()
    return {name: statistics.median(v) for name, v in samples.items()}


def _open_cost(root: Path, sizes: list) -> dict:
    out = {}
    for size in sizes:
        d = root / f"open{size}"
        d.mkdir()
        buf = DiskBuffer(d / "outbox.sqlite", max_bytes=1 << 30)
        buf.close()
        conn = sqlite3.connect(str(d / "outbox.sqlite"))
        with conn:
            conn.executemany(
                "INSERT INTO queue(seq, topic, payload, size) VALUES(?, 't', ?, ?)",
                ((i + 1, PAYLOAD, len(PAYLOAD)) for i in range(size)),
            )
        conn.close()
        t0 = time.perf_counter()
        buf = DiskBuffer(d / "outbox.sqlite", max_bytes=1 << 30)
        out[size] = (time.perf_counter() - t0) * 1e3
        assert len(buf) == size
        buf.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dir", type=Path, help="where to write (default: a temp dir under the repo)")
    ap.add_argument("--open-sizes", default="1000,10000,50000")
    args = ap.parse_args()
    base = args.dir or REPO / "benchmarks" / "results"
    base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=str(base), prefix=".bench_outbox_") as tmp:
        best = _interleaved(Path(tmp), args.results, args.rounds)
        opened = _open_cost(Path(tmp), [int(s) for s in args.open_sizes.split(",")])
    floor = best["sqlite floor"]
    print(f"\n### Per result ({args.results} x {args.rounds} interleaved calls, median ms)\n")
    print("| write | ms / result | x floor |\n|---|---:|---:|")
    for name, ms in best.items():
        print(f"| {name} | {ms:.3f} | {ms / floor:.2f} |")
    print("\n### Opening an outbox (quick_check + recount)\n")
    print("| messages | ms |\n|---:|---:|")
    for size, ms in opened.items():
        print(f"| {size:,} | {ms:.1f} |")
    result = {
        "per_result_ms": best,
        "open_ms": opened,
        "results": args.results,
        "rounds": args.rounds,
    }
    out = REPO / "benchmarks" / "results" / "bench_outbox.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
