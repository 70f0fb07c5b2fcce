"""Rules files and their actions: store, republish, a Python ``handler(event, context)``.

A rules file (YAML or JSON)::

    rules:
      - name: low_confidence
        sql: SELECT device, seq, predictions[0] AS top FROM '$aws/things/+/infer'
             WHERE predictions[0].probability < 0.5
        actions:
          - store: {jsonl: low.jsonl}            # SQLite always, JSONL optional
          - republish: {topic: 'alerts/${device}'}
          - handler: {file: handler.py, function: handler}

Actions are a registry (:data:`ACTIONS`): each kind is a class built from its options and
run with the selected event and a :class:`Context`. Paths are relative to the rules file.
A handler is the Lambda contract: ``handler(event, context)``; it is retried twice, then
the failure is recorded (a dead-letter row) and the stream goes on.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .sql import Query, parse_expr, parse_query
from .store import CloudStore

log = logging.getLogger(__name__)
_TEMPLATE = re.compile(r"\$\{([^}]{1,200})\}")


@dataclass
class Context:
    """What an action knows besides the event (the Lambda ``context`` argument, extended)."""

    rule: str
    topic: str
    device: str
    key: str
    store: CloudStore
    publish: Callable[[str, bytes], None]
    function_name: str = ""
    aws_request_id: str = ""
    deadline: float = field(default_factory=lambda: time.monotonic() + 30.0)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


class StoreAction:
    """Keep the event in SQLite (unique per rule/device/key) and optionally a JSONL file.

    JSONL lines of a batch are written and fsynced once, in :meth:`sync`, which the service
    calls just before it commits the batch (and :meth:`discard` when the batch fails).
    """

    def __init__(self, options: dict[str, Any], base: Path) -> None:
        self.jsonl = base / options["jsonl"] if options.get("jsonl") else None
        self.stored = 0
        self._lines: list[str] = []

    def run(self, event: dict[str, Any], ctx: Context) -> None:
        if ctx.store.add_event(ctx.rule, ctx.device, ctx.key, ctx.topic, event):
            self.stored += 1
            if self.jsonl is not None:
                row = {"rule": ctx.rule, "device": ctx.device, "key": ctx.key, "event": event}
                self._lines.append(json.dumps(row) + "\n")

    def sync(self) -> None:
        """Append this batch's lines durably (before the commit: at-least-once in the file)."""
        if self.jsonl is None or not self._lines:
            return
        self.jsonl.parent.mkdir(parents=True, exist_ok=True)
        with open(str(self.jsonl), "a", encoding="utf-8") as fh:
            fh.writelines(self._lines)
            fh.flush()
            os.fsync(fh.fileno())
        self._lines = []

    def discard(self) -> None:
        self._lines = []


class RepublishAction:
    """Publish the event (JSON) to a topic; ``${expr}`` in the topic is filled from the event."""

    def __init__(self, options: dict[str, Any], base: Path) -> None:
        self.topic = str(options.get("topic") or "")
        if not self.topic or "#" in self.topic or "+" in self.topic:
            raise ConfigError(f"republish needs a topic without wildcards, got {self.topic!r}")
        self.parts = [(m.group(0), parse_expr(m.group(1))) for m in _TEMPLATE.finditer(self.topic)]

    def run(self, event: dict[str, Any], ctx: Context) -> None:
        topic = self.topic
        for raw, expr in self.parts:
            value = expr({"doc": event, "topic": ctx.topic})
            topic = topic.replace(raw, "" if value is None else re.sub(r"[#+/]", "_", str(value)))
        ctx.publish(topic, json.dumps(event, separators=(",", ":")).encode("utf-8"))


class HandlerAction:
    """Call ``function(event, context)`` from a Python file, the AWS Lambda contract."""

    retries = 2

    def __init__(self, options: dict[str, Any], base: Path) -> None:
        path = base / str(options.get("file", ""))
        name = str(options.get("function", "handler"))
        if not path.is_file():
            raise ConfigError(f"handler file {path} does not exist")
        spec = importlib.util.spec_from_file_location(
            "caltech_edge_handler_" + path.stem, str(path)
        )
        if spec is None or spec.loader is None:
            raise ConfigError(f"cannot load handler file {path}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        fn = getattr(module, name, None)
        if not callable(fn):
            raise ConfigError(f"{path} has no function {name}(event, context)")
        self.fn: Callable[..., Any] = fn
        self.name = f"{path.name}:{name}"

    def run(self, event: dict[str, Any], ctx: Context) -> None:
        ctx.function_name, ctx.aws_request_id = self.name, f"{ctx.device}:{ctx.key}"
        for attempt in range(self.retries + 1):
            try:
                self.fn(dict(event), ctx)
                return
            except Exception as exc:  # the user's code: retried, then dead-lettered
                if attempt == self.retries:
                    log.warning("handler %s failed on %s: %s", self.name, ctx.aws_request_id, exc)
                    ctx.store.add_failure(ctx.rule, ctx.device, ctx.key, self.name, repr(exc))


ACTIONS: dict[str, Any] = {
    "store": StoreAction,
    "republish": RepublishAction,
    "handler": HandlerAction,
}


@dataclass
class Rule:
    name: str
    query: Query
    actions: list[tuple[str, Any]]
    matched: int = 0


def _action(spec: Any, base: Path, where: str) -> tuple[str, Any]:
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ConfigError(f"{where}: each action is one mapping like {{store: {{}}}}")
    kind, options = next(iter(spec.items()))
    if kind not in ACTIONS:
        raise ConfigError(
            "{}: unknown action {!r}; known: {}".format(where, kind, ", ".join(sorted(ACTIONS)))
        )
    return kind, ACTIONS[kind](options or {}, base)


def load_rules(path: Path) -> list[Rule]:
    """Parse a rules file (YAML, or JSON) into :class:`Rule` objects; errors name the rule."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read rules file {path}: {exc}") from exc
    data = _parse(text, path)
    items = data.get("rules") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{path}: expected a top-level 'rules:' list")
    rules: list[Rule] = []
    names: set[str] = set()
    for i, item in enumerate(items):
        name = str(item.get("name") or f"rule{i + 1}") if isinstance(item, dict) else ""
        where = f"{path.name} rule {name or i + 1!r}"
        if not name or not isinstance(item.get("actions"), list) or "sql" not in item:
            raise ConfigError(f"{where}: needs 'sql' and an 'actions' list")
        if name in names:
            raise ConfigError(f"{where}: duplicate rule name")
        names.add(name)
        query = parse_query(" ".join(str(item["sql"]).split()))
        rules.append(Rule(name, query, [_action(a, path.parent, where) for a in item["actions"]]))
    return rules


def _parse(text: str, path: Path) -> Any:
    if path.suffix == ".json":
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{path}: invalid JSON ({exc})") from exc
    from .._registry import require

    yaml = require("yaml", "cloud", purpose="YAML rules files")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from exc


def evaluate(rules: list[Rule], doc: Any, topic: str) -> list[tuple[Rule, dict[str, Any]]]:
    """Every (rule, selected event) whose FROM filter and WHERE match this message."""
    out = []
    for rule in rules:
        event = rule.query.apply(doc, topic)
        if event is not None:
            rule.matched += 1
            out.append((rule, event))
    return out


def run_actions(rule: Rule, event: dict[str, Any], ctx: Context) -> None:
    for _, action in rule.actions:
        action.run(event, ctx)


def before_commit(rules: list[Rule], *, failed: bool = False) -> None:
    """Let actions that batch their output write it (or drop it when the batch failed)."""
    for rule in rules:
        for _, action in rule.actions:
            hook = getattr(action, "discard" if failed else "sync", None)
            if hook is not None:
                hook()


def rule_stats(rules: list[Rule]) -> dict[str, int | None]:
    return {r.name: r.matched for r in rules}
