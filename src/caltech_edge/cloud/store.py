"""Durable rule output and the de-duplication ledger, in one SQLite file.

``seen(device, key)`` records every message already handled (``key`` = the payload's
``seq``, or ``capture:<sha256>`` for uploaded frames), and ``events`` holds what store
actions kept, unique per ``(rule, device, key)``. The service commits a batch of
messages in one transaction and acknowledges them to the broker only after the commit,
so a crash before the commit means redelivery (handled again), after it means nothing
is lost and nothing is stored twice. WAL + ``synchronous=FULL``: a commit is on disk.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from ..runtime.payload import now_iso

_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (device TEXT NOT NULL, key TEXT NOT NULL, at TEXT NOT NULL,
    PRIMARY KEY (device, key));
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, rule TEXT NOT NULL,
    device TEXT NOT NULL, key TEXT NOT NULL, topic TEXT NOT NULL, received TEXT NOT NULL,
    event TEXT NOT NULL, UNIQUE (rule, device, key));
CREATE TABLE IF NOT EXISTS failures (id INTEGER PRIMARY KEY AUTOINCREMENT, rule TEXT, device TEXT,
    key TEXT, action TEXT, error TEXT, at TEXT);
"""


class CloudStore:
    """The cloud process's SQLite database; one writer thread at a time (a lock guards it)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self.lock = threading.RLock()

    def begin(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self._db.execute("COMMIT")

    def rollback(self) -> None:
        self._db.execute("ROLLBACK")

    def was_seen(self, device: str, key: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM seen WHERE device=? AND key=?", (device, key)
        ).fetchone()
        return row is not None

    def mark_seen(self, device: str, key: str) -> None:
        self._db.execute("INSERT OR IGNORE INTO seen VALUES (?, ?, ?)", (device, key, now_iso()))

    def add_event(
        self, rule: str, device: str, key: str, topic: str, event: dict[str, Any]
    ) -> bool:
        """Insert one stored event; False when this (rule, device, key) is already there."""
        cur = self._db.execute(
            "INSERT OR IGNORE INTO events (rule, device, key, topic, received, event) VALUES (?,?,?,?,?,?)",
            (rule, device, key, topic, now_iso(), json.dumps(event, separators=(",", ":"))),
        )
        return cur.rowcount == 1

    def add_failure(self, rule: str, device: str, key: str, action: str, error: str) -> None:
        self._db.execute(
            "INSERT INTO failures (rule, device, key, action, error, at) VALUES (?,?,?,?,?,?)",
            (rule, device, key, action, error[:2000], now_iso()),
        )

    def events(self, rule: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            sql = "SELECT rule, device, key, topic, event FROM events"
            rows = self._db.execute(
                sql + (" WHERE rule=? ORDER BY id" if rule else " ORDER BY id"),
                (rule,) if rule else (),
            ).fetchall()
        return [
            {"rule": r, "device": d, "key": k, "topic": t, "event": json.loads(e)}
            for r, d, k, t, e in rows
        ]

    def count(self, table: str) -> int:
        if table not in ("seen", "events", "failures"):
            raise ValueError(table)
        with self.lock:
            return int(self._db.execute("SELECT COUNT(*) FROM " + table).fetchone()[0])

    def close(self) -> None:
        with self.lock:
            self._db.close()
