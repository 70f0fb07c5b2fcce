"""The retrain gate and its printed comparison (the full retrain runs in test_loop_e2e)."""

from __future__ import annotations

import pytest

from caltech_edge.cloud.retrain import comparison_table, not_worse


@pytest.mark.parametrize(
    ("old", "new", "tolerance", "expected"),
    [
        (0.8, 0.8, 0.0, True),
        (0.8, 0.79, 0.0, False),
        (0.8, 0.79, 0.02, True),
        (0.5, 0.9, 0.0, True),
    ],
)
def test_not_worse(old, new, tolerance, expected):
    assert not_worse(old, new, tolerance) is expected


def test_comparison_table_says_what_happened():
    report = {
        "previous": {"top1": 0.8, "top5": 0.95, "images": 40},
        "new": {"top1": 0.75, "top5": 0.95, "images": 40},
        "delta_top1": -0.05,
        "tolerance": 0.0,
        "not_worse": False,
    }
    text = comparison_table(report)
    assert "0.8000" in text and "0.7500" in text and "-0.0500" in text
    assert "kept the previous model" in text
