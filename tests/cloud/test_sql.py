"""The IoT-SQL subset: what it selects and filters, what it refuses (no eval anywhere)."""

from __future__ import annotations

import pytest

from caltech_edge.cloud.sql import QueryError, parse_query, topic_matches

DOC = {
    "device": "cam-1",
    "seq": 7,
    "predictions": [
        {"label": "001.red", "probability": 0.42},
        {"label": "002.green", "probability": 0.3},
    ],
    "model": {"hash": "abc"},
}
TOPIC = "$aws/things/cam-1/infer"


def test_select_where_and_aliases():
    q = parse_query(
        "SELECT device, predictions[0].probability AS p, topic(3) AS thing, upper(device) "
        "FROM '$aws/things/+/infer' WHERE predictions[0].probability < 0.5 AND seq % 7 = 0"
    )
    assert q.apply(DOC, TOPIC) == {"device": "cam-1", "p": 0.42, "thing": "cam-1", "upper": "CAM-1"}
    assert q.apply(dict(DOC, seq=8), TOPIC) is None  # WHERE false
    assert q.apply(DOC, "other/topic") is None  # FROM does not match


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("1 + 2 * 3 = 7", True),
        ("(1 + 2) * 3 = 7", False),
        ("NOT missing.field = 1", True),  # undefined compares false
        ("missing.field + 1 > 0", False),  # undefined arithmetic is undefined
        ("predictions[5].label = 'x'", False),  # out of range is undefined, not an error
        ("device = 'cam-1' OR seq > 100", True),
        ("device <> 'cam-1'", False),
        ("'it''s' = 'it''s'", True),
        ("-seq < 0 AND abs(-seq) = 7", True),
        ("device > 3", False),  # type mismatch: undefined, not a crash
    ],
)
def test_expressions(where, expected):
    assert (
        parse_query(f"SELECT * FROM '#' WHERE {where}").apply(DOC, TOPIC) is not None
    ) is expected


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT FROM 'a'", "unexpected 'from'"),
        ("SELECT a FROM b", "quoted 'topic/filter'"),
        ("SELECT __import__('os') FROM 'a'", "unknown function"),
        ("SELECT a FROM 'a' WHERE a ==", "unexpected '='"),
        ("SELECT a FROM 'a'; DROP TABLE x", "unexpected character"),
        ("SELECT " + "a," * 3000 + "b FROM 'a'", "longer than"),
    ],
)
def test_errors_name_the_problem(sql, message):
    with pytest.raises(QueryError, match=message):
        parse_query(sql)


def test_topic_filters():
    assert topic_matches("$aws/things/+/infer", TOPIC)
    assert topic_matches("caltech-edge/#", "caltech-edge/captures/cam")
    assert not topic_matches("$aws/things/+/infer", "$aws/things/cam/jobs/x/update")
    assert not topic_matches("a/+", "a/b/c")
