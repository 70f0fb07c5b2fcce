"""The on-disk outbox behind "nothing lost": a bounded, fsync'd, ordered message queue.

A device loses power and network; results must survive both. Every payload is written to
a SQLite file (stdlib, one transaction per message, ``synchronous=FULL`` so a commit is on
disk) before anyone tries to send it, and is deleted only after the broker acknowledged it
(MQTT PUBACK). Messages leave in sequence order. The queue is bounded by count and bytes;
what happens when it is full is an explicit policy whose victims are counted:

- ``drop_oldest`` (default): the oldest unsent results make room (a camera's newest
  frames matter most);
- ``drop_newest``: the new result is refused and counted.

:class:`Sequencer` hands out the sequence ids that let consumers de-duplicate: strictly
increasing, persisted, so a restarted device continues where it stopped.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from ..errors import ConfigError

OVERFLOW_POLICIES = ("drop_oldest", "drop_newest")
PathLike = Union[str, "os.PathLike[str]"]


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=30.0, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
    return conn


class Sequencer:
    """Strictly increasing sequence ids that survive a restart (SQLite ``meta`` row).

    ``path=None`` keeps the counter in memory (tests, one-shot runs).
    """

    def __init__(self, path: Optional[PathLike] = None, *, start: int = 1) -> None:
        self._lock = threading.Lock()
        self._conn = None  # type: Optional[sqlite3.Connection]
        self._next = int(start)
        if path is not None:
            self._conn = _connect(Path(path))
            row = self._conn.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()
            if row is not None:
                self._next = max(self._next, int(row[0]))

    def next(self) -> int:
        """Reserve and persist the next id before returning it (never reused, even on crash)."""
        with self._lock:
            seq = self._next
            self._next += 1
            if self._conn is not None:
                self._conn.execute(
                    "INSERT INTO meta(key, value) VALUES('next_seq', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                    (self._next,),
                )
            return seq

    @property
    def peek(self) -> int:
        return self._next

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class DiskBuffer:
    """Bounded FIFO of ``(seq, topic, payload bytes)`` in one SQLite file.

    Thread-safe (one lock): the publishing loop appends while a sender thread reads and
    removes. ``max_messages``/``max_bytes`` bound the queue; ``overflow`` says who is dropped.
    """

    def __init__(
        self,
        path: PathLike,
        *,
        max_messages: int = 100000,
        max_bytes: int = 64 * 1024 * 1024,
        overflow: str = "drop_oldest",
    ) -> None:
        if overflow not in OVERFLOW_POLICIES:
            raise ConfigError(
                "overflow policy must be one of {}, got {!r}".format(OVERFLOW_POLICIES, overflow)
            )
        if int(max_messages) < 1 or int(max_bytes) < 1:
            raise ConfigError("buffer bounds must be >= 1 (max_messages, max_bytes)")
        self.path = Path(path)
        self.max_messages = int(max_messages)
        self.max_bytes = int(max_bytes)
        self.overflow = overflow
        self._lock = threading.Lock()
        self._conn = _connect(self.path)
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS queue (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, "
            "payload BLOB NOT NULL, size INTEGER NOT NULL)"
        )
        count, size = self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM queue"
        ).fetchone()
        self._count, self._bytes = int(count), int(size)

    # -- counters kept in the same file, so overflow stays visible across restarts --
    def _bump(self, key: str, by: int = 1) -> None:
        self._conn.execute(
            "INSERT INTO meta(key, value) VALUES(?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value=value+excluded.value",
            (key, by),
        )

    def _counter(self, key: str) -> int:
        row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def put(self, seq: int, topic: str, payload: bytes) -> bool:
        """Store one message durably; returns False when the overflow policy refused it."""
        size = len(payload)
        with self._lock:
            if size > self.max_bytes:
                self._bump("dropped_too_large")
                return False
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                while self._count >= self.max_messages or self._bytes + size > self.max_bytes:
                    if self.overflow == "drop_newest" or self._count == 0:
                        self._bump("dropped_newest")
                        self._conn.execute("COMMIT")
                        return False
                    old_seq, old_size = self._conn.execute(
                        "SELECT seq, size FROM queue ORDER BY seq LIMIT 1"
                    ).fetchone()
                    self._conn.execute("DELETE FROM queue WHERE seq=?", (old_seq,))
                    self._count -= 1
                    self._bytes -= int(old_size)
                    self._bump("dropped_oldest")
                old = self._conn.execute(
                    "SELECT size FROM queue WHERE seq=?", (int(seq),)
                ).fetchone()
                if old is not None:  # same seq again (state reset): replace, keep counts right
                    self._count -= 1
                    self._bytes -= int(old[0])
                self._conn.execute(
                    "INSERT OR REPLACE INTO queue(seq, topic, payload, size) VALUES(?, ?, ?, ?)",
                    (int(seq), topic, sqlite3.Binary(payload), size),
                )
                self._bump("enqueued")
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                self._count, self._bytes = self._recount()
                raise
            self._count += 1
            self._bytes += size
            return True

    def _recount(self) -> Tuple[int, int]:
        count, size = self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM queue"
        ).fetchone()
        return int(count), int(size)

    def pending(self, *, after: int = 0, limit: int = 100) -> List[Tuple[int, str, bytes]]:
        """Up to ``limit`` messages with ``seq > after``, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, topic, payload FROM queue WHERE seq > ? ORDER BY seq LIMIT ?",
                (int(after), int(limit)),
            ).fetchall()
        return [(int(s), str(t), bytes(p)) for s, t, p in rows]

    def remove(self, seq: int) -> None:
        """Forget a delivered message (called on the broker's acknowledgement)."""
        with self._lock:
            row = self._conn.execute("SELECT size FROM queue WHERE seq=?", (int(seq),)).fetchone()
            if row is None:
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute("DELETE FROM queue WHERE seq=?", (int(seq),))
            self._bump("delivered")
            self._conn.execute("COMMIT")
            self._count -= 1
            self._bytes -= int(row[0])

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        return self._bytes

    def stats(self) -> Dict[str, int]:
        with self._lock:
            out = {"pending": self._count, "pending_bytes": self._bytes}
            for key in ("enqueued", "delivered", "dropped_oldest", "dropped_newest"):
                out[key] = self._counter(key)
            out["dropped_too_large"] = self._counter("dropped_too_large")
        return out

    def close(self) -> None:
        with self._lock:
            self._conn.close()
