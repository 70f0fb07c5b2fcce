"""Fixtures for the cloud side: a real broker, a tiny model, a rules file with a handler."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "runtime"))
sys.path.insert(0, str(TESTS / "deploy"))

from deploy_helpers import tiny_model  # noqa: E402
from runtime_helpers import Broker, need_mosquitto  # noqa: E402

HANDLER = '''
import json, os

def handler(event, context):
    """Appends what it was called with; fails once on purpose for seq 3 (retried)."""
    path = os.environ["HANDLER_LOG"]
    marker = path + ".failed-once"
    if event.get("seq") == 3 and not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("transient")
    with open(path, "a") as fh:
        fh.write(json.dumps({"event": event, "request": context.aws_request_id, "rule": context.rule}) + "\\n")
'''

RULES = """
rules:
  - name: all_results
    sql: SELECT * FROM '$aws/things/+/infer'
    actions:
      - store: {jsonl: results.jsonl}
  - name: low_confidence
    sql: >-
      SELECT device, seq, predictions[0].label AS label, predictions[0].probability AS p,
      model.hash AS model_hash FROM '$aws/things/+/infer' WHERE predictions[0].probability < 0.5
    actions:
      - store: {}
      - republish: {topic: 'alerts/${device}'}
      - handler: {file: handler.py, function: handler}
  - name: captures
    sql: SELECT device, image, sha256, predictions[0].label AS predicted FROM 'caltech-edge/captures/+'
    actions:
      - store: {jsonl: captures.jsonl}
      - handler: {file: handler.py, function: handler}
"""


@pytest.fixture()
def rules_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "handler.py").write_text(HANDLER)
    monkeypatch.setenv("HANDLER_LOG", str(tmp_path / "handler.log"))
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return path


@pytest.fixture(scope="session")
def cloud_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("cloud_model"), scale=40.0)


@pytest.fixture()
def broker(tmp_path: Path):
    need_mosquitto()
    b = Broker(tmp_path).start()
    yield b
    b.stop()
