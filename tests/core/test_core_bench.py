"""Benchmark plumbing: statistics and tables are right, machine info is filled in."""

from __future__ import annotations

import itertools

from caltech_edge._bench import machine_info, markdown_table, time_ms


def test_time_ms_statistics_and_call_count():
    calls = itertools.count()
    timing = time_ms(lambda: next(calls), warmup=2, iters=11)
    assert next(calls) == 13  # 2 warm-up + 11 timed calls
    assert timing.iters == 11
    assert 0 <= timing.min_ms <= timing.median_ms <= timing.p90_ms
    assert timing.per_second > 0


def test_machine_info_and_table():
    info = machine_info()
    assert info["cores"] >= 1 and info["cpu"]
    assert "numpy" in info["versions"]
    table = markdown_table([{"a": 1.23456, "b": None}, {"a": 12345.6, "b": "x"}], ["a", "b"])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1.235 | - |", "| 12,346 | x |"]


def test_time_interleaved_alternates_and_counts():
    order = []
    fns = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    from caltech_edge._bench import time_interleaved

    timings = time_interleaved(fns, warmup=1, iters=6, rounds=3)
    assert order[:2] == ["a", "b"]  # warm-up of each
    assert order[2:] == ["a", "a", "b", "b"] * 3  # three alternating rounds of two calls
    assert {t.iters for t in timings.values()} == {6}


def test_paired_ratios_divide_within_rounds_and_reverse_the_order(monkeypatch):
    """A machine 10x slower for the second half of the run leaves the ratio exact, and
    every other round starts with the other callable."""
    from caltech_edge import _bench

    clock = {"t": 0.0, "calls": 0}
    order = []

    def fake(name: str, cost: float):
        def call():
            order.append(name)
            clock["calls"] += 1
            clock["t"] += cost * (10.0 if clock["calls"] > 30 else 1.0)

        return call

    monkeypatch.setattr(_bench.time, "perf_counter", lambda: clock["t"])
    monkeypatch.setattr(_bench.time, "sleep", lambda seconds: None)
    ratios = _bench.paired_ratios(
        "raw", {"ours": fake("ours", 1.1), "raw": fake("raw", 1.0)},
        warmup=0, rounds=6, per_block=5,
    )  # fmt: skip
    monkeypatch.undo()
    assert abs(ratios["ours"] - 1.0 / 1.1) < 1e-9 and ratios["raw"] == 1.0
    assert order[:10] == ["ours"] * 5 + ["raw"] * 5 and order[10:20] == ["raw"] * 5 + ["ours"] * 5
