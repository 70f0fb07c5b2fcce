"""What "nothing lost" costs per result, and what the startup integrity check costs.

Every result the device publishes over MQTT takes a sequence id (``Sequencer.next``: one
fsync'd SQLite statement holding ``next_seq`` and ``done``) and is committed to the outbox
(``DiskBuffer.put``: one fsync'd transaction holding the message, its counters and the
high-water mark). Measured side by side in one process, round-robin over ``--rounds``
rounds (best round's median kept; the machine is shared):

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


def _time_each(fn, n: int) -> float:
    """Median milliseconds of ``fn(i)`` over ``n`` calls."""
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _round(root: Path, n: int, r: int) -> dict:
    d = root / f"round{r}"
    d.mkdir()
    conn = connect(d / "floor.sqlite")
    conn.execute("CREATE TABLE q (seq INTEGER PRIMARY KEY, payload BLOB)")
    floor = _time_each(lambda i: conn.execute("INSERT INTO q VALUES(?, ?)", (i, PAYLOAD)), n)
    conn.close()
    (d / "a").mkdir()
    seq = Sequencer(d / "a" / "sequence.sqlite")
    nxt = _time_each(lambda i: seq.next(), n)
    seq.close()
    (d / "b").mkdir()
    buf = DiskBuffer(d / "b" / "outbox.sqlite")
    put = _time_each(lambda i: buf.put(i + 1, "t", PAYLOAD), n)
    buf.close()
    both = {}
    cases = (("next + put (id persisted twice)", "c"), ("next + put (id in the outbox)", "e"))
    for name, sub in cases:
        (d / sub).mkdir()
        buf = DiskBuffer(d / sub / "outbox.sqlite")
        seq = Sequencer(d / sub / "sequence.sqlite", outbox=buf if sub == "e" else None)
        both[name] = _time_each(lambda i, b=buf, s=seq: b.put(s.next(), "t", PAYLOAD), n)
        seq.close()
        buf.close()
    return {"sqlite floor": floor, "Sequencer.next": nxt, "DiskBuffer.put": put, **both}


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
        rounds = [_round(Path(tmp), args.results, r) for r in range(args.rounds)]
        best = {k: min(r[k] for r in rounds) for k in rounds[0]}
        opened = _open_cost(Path(tmp), [int(s) for s in args.open_sizes.split(",")])
    floor = best["sqlite floor"]
    print(
        f"\n### Per result ({args.results} results x {args.rounds} rounds, median ms, best round)\n"
    )
    print("| write | ms / result | x floor |\n|---|---:|---:|")
    for name, ms in best.items():
        print(f"| {name} | {ms:.3f} | {ms / floor:.2f} |")
    print("\n### Opening an outbox (quick_check + recount)\n")
    print("| messages | ms |\n|---:|---:|")
    for size, ms in opened.items():
        print(f"| {size:,} | {ms:.1f} |")
    result = {"per_result_ms": best, "rounds": rounds, "open_ms": opened, "results": args.results}
    out = REPO / "benchmarks" / "results" / "bench_outbox.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
