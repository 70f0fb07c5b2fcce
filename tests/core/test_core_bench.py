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
