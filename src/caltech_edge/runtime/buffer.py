"""The on-disk outbox behind "nothing lost": a bounded, fsync'd, ordered message queue.

A device loses power and network; results must survive both. Every payload is written to
a SQLite file (stdlib, one transaction per message, ``synchronous=FULL`` so a commit is on
disk) before anyone tries to send it, and is deleted only after the broker acknowledged it
(MQTT PUBACK). Messages leave in sequence order. The queue is bounded by count and bytes;
what happens when it is full is an explicit policy whose victims are logged when they are
dropped and counted (on disk, and for this process in :attr:`DiskBuffer.dropped`):

- ``drop_oldest`` (default): the oldest unsent results make room (a camera's newest
  frames matter most);
- ``drop_newest``: the new result is refused and counted.

:class:`Sequencer` hands out the sequence ids that let consumers de-duplicate: strictly
increasing, persisted, so a restarted device continues where it stopped. Ids stay unique
when a state file is lost: the outbox records the highest id it ever stored (in the same
transaction as the message) and the sequencer starts above it; and every sequencer has an
``epoch`` (random, new whenever its state starts from nothing) that goes into payloads.
A process killed between taking an id and finishing its publish leaves a *gap*; the next
run announces it in its first payload (``gap: {first, last}``) so a consumer can tell a
crash from a loss. One process per state directory (:class:`~.state.DirLock`); damaged
files are quarantined and salvaged (:func:`~.state.open_checked`).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ..errors import ConfigError
from .sequence import META_SQL as _META_SQL
from .sequence import OUTBOX_NAME, SEQUENCE_NAME, PathLike, Sequencer, outbox_high_water
from .state import DirLock, open_checked, salvage_rows, state_error

__all__ = [
    "MIN_BUFFER_BYTES",
    "OUTBOX_NAME",
    "OVERFLOW_POLICIES",
    "SEQUENCE_NAME",
    "DiskBuffer",
    "Sequencer",
    "open_state",
    "outbox_high_water",
]

OVERFLOW_POLICIES = ("drop_oldest", "drop_newest")
#: The smallest outbox byte bound accepted: a result payload is ~0.8-1.2 KB, so a bound
#: below this could not hold even a few and would silently drop everything.
MIN_BUFFER_BYTES = 4096
_QUEUE_SQL = (
    "CREATE TABLE IF NOT EXISTS queue (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, "
    "payload BLOB NOT NULL, size INTEGER NOT NULL)"
)

log = logging.getLogger(__name__)


class DiskBuffer:
    """Bounded FIFO of ``(seq, topic, payload bytes)`` in one SQLite file.

    Thread-safe (one lock): the publishing loop appends while a sender thread reads and
    removes. ``max_messages``/``max_bytes`` bound the queue; ``overflow`` says who is dropped.
    Every drop is logged when it happens and counted (on disk; :attr:`dropped` for this
    process). A damaged file is quarantined and its readable rows carried over.
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
        if int(max_messages) < 1:
            raise ConfigError("--buffer-max-messages must be >= 1, got {}".format(max_messages))
        if int(max_bytes) < MIN_BUFFER_BYTES:
            raise ConfigError(
                "--buffer-max-bytes {} cannot hold even a few results (~1 KB each), so every "
                "result would be dropped; use at least {}".format(max_bytes, MIN_BUFFER_BYTES)
            )
        self.path = Path(path)
        self.max_messages = int(max_messages)
        self.max_bytes = int(max_bytes)
        self.overflow = overflow
        self.dropped = 0  # results this process lost to the overflow policy
        self._lock = threading.Lock()
        self._dirlock = DirLock(self.path.parent)
        try:
            self._conn, self.quarantined = open_checked(
                self.path, [_META_SQL, _QUEUE_SQL], what="outbox"
            )
            if self.quarantined is not None:
                self._salvage(self.quarantined)
            self._count, self._bytes = self._recount()
        except BaseException:
            self._dirlock.release()
            raise

    def _salvage(self, damaged: Path) -> None:
        rows = salvage_rows(damaged, "queue", "seq, topic, payload, size")
        meta = salvage_rows(damaged, "meta", "key, value")
        high = max([int(r[0]) for r in rows] + [int(v) for k, v in meta if k == "high_water"] + [0])
        self._conn.execute("BEGIN IMMEDIATE")
        self._conn.executemany(
            "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)",
            [(str(k), int(v)) for k, v in meta],
        )
        self._conn.executemany(
            "INSERT OR REPLACE INTO queue(seq, topic, payload, size) VALUES(?, ?, ?, ?)", rows
        )
        self._set_high_water(high)
        self._conn.execute("COMMIT")
        log.warning(
            "outbox %s: salvaged %d unsent result(s) from the damaged file %s",
            self.path,
            len(rows),
            damaged.name,
        )

    # -- counters kept in the same file, so overflow stays visible across restarts --
    def _bump(self, key: str, by: int = 1) -> None:
        self._conn.execute(
            "INSERT INTO meta(key, value) VALUES(?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value=value+excluded.value",
            (key, by),
        )

    def _set_high_water(self, seq: int) -> None:
        self._conn.execute(
            "INSERT INTO meta(key, value) VALUES('high_water', ?) "
            "ON CONFLICT(key) DO UPDATE SET value=MAX(value, excluded.value)",
            (int(seq),),
        )

    def _counter(self, key: str) -> int:
        row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _drop(self, kind: str, seq: int, why: str) -> None:
        self.dropped += 1
        log.warning(
            "outbox %s: DROPPED the %s result seq=%d (%s; policy %s; %d dropped by this process)",
            self.path,
            kind,
            seq,
            why,
            self.overflow,
            self.dropped,
        )

    def put(self, seq: int, topic: str, payload: bytes) -> bool:
        """Store one message durably; returns False when the overflow policy refused it.

        The message and the outbox's high-water mark commit in one transaction, so an id
        found in the outbox is never handed out again, even if the sequence file is lost.
        """
        size = len(payload)
        victims = []  # type: List[Tuple[str, int, str]]
        with self._lock:
            try:
                stored = self._put(int(seq), topic, payload, size, victims)
            except sqlite3.Error as exc:
                self._rollback()
                self._count, self._bytes = self._recount()
                raise state_error(self.path, exc) from None
        for key, victim, why in victims:
            self._drop(key, victim, why)
        return stored

    def _put(self, seq: int, topic: str, payload: bytes, size: int, victims: List[Any]) -> bool:
        full = "outbox full: {} messages / {} bytes".format(self.max_messages, self.max_bytes)
        self._conn.execute("BEGIN IMMEDIATE")
        if size > self.max_bytes:
            self._bump("dropped_too_large")
            self._set_high_water(seq)
            self._conn.execute("COMMIT")
            victims.append(("too_large", seq, "{} bytes > --buffer-max-bytes".format(size)))
            return False
        while self._count >= self.max_messages or self._bytes + size > self.max_bytes:
            if self.overflow == "drop_newest" or self._count == 0:
                self._bump("dropped_newest")
                self._set_high_water(seq)
                self._conn.execute("COMMIT")
                victims.append(("newest", seq, full))
                return False
            old_seq, old_size = self._conn.execute(
                "SELECT seq, size FROM queue ORDER BY seq LIMIT 1"
            ).fetchone()
            self._conn.execute("DELETE FROM queue WHERE seq=?", (old_seq,))
            self._count -= 1
            self._bytes -= int(old_size)
            self._bump("dropped_oldest")
            victims.append(("oldest", int(old_seq), full))
        old = self._conn.execute("SELECT size FROM queue WHERE seq=?", (seq,)).fetchone()
        if old is not None:  # same seq again (a resend): replace, keep counts right
            self._count -= 1
            self._bytes -= int(old[0])
        self._conn.execute(
            "INSERT OR REPLACE INTO queue(seq, topic, payload, size) VALUES(?, ?, ?, ?)",
            (seq, topic, sqlite3.Binary(payload), size),
        )
        self._bump("enqueued")
        self._set_high_water(seq)
        self._conn.execute("COMMIT")
        self._count += 1
        self._bytes += size
        return True

    def _rollback(self) -> None:
        """Undo an open transaction; SQLite may already have rolled back (disk full)."""
        if self._conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")

    def _recount(self) -> Tuple[int, int]:
        count, size = self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM queue"
        ).fetchone()
        return int(count), int(size)

    @property
    def high_water(self) -> int:
        """The highest id this outbox ever stored or dropped (ids above it are free)."""
        with self._lock:
            return max(self._counter("high_water"), self._recount_max())

    def _recount_max(self) -> int:
        row = self._conn.execute("SELECT MAX(seq) FROM queue").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

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
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.execute("DELETE FROM queue WHERE seq=?", (int(seq),))
                self._bump("delivered")
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise state_error(self.path, exc) from None
            self._count -= 1
            self._bytes -= int(row[0])

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        return self._bytes

    def stats(self) -> Dict[str, Any]:
        with self._lock:
            out = {"pending": self._count, "pending_bytes": self._bytes}  # type: Dict[str, Any]
            for key in ("enqueued", "delivered", "dropped_oldest", "dropped_newest"):
                out[key] = self._counter(key)
            out["dropped_too_large"] = self._counter("dropped_too_large")
            out["dropped_this_run"] = self.dropped
            if self.quarantined is not None:
                out["quarantined"] = str(self.quarantined)
        return out

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
        self._dirlock.release()


def open_state(
    directory: PathLike, *, outbox: bool = True, **limits: Any
) -> Tuple[Optional[DiskBuffer], Sequencer]:
    """The outbox (when results go to a broker) and the :class:`Sequencer` attached to it.

    Every device entry point (``caltech-edge infer``, the DeepLens Lambda, quickstart)
    opens its state here, so all of them get the same wiring: the outbox first (ids start
    above its high-water mark), then a sequencer committing each id with its message --
    one fsync per result instead of two, and no gap after ``kill -9``. ``outbox=False``
    (no broker) gives ``(None, a sequencer persisting its own counter)``. ``limits`` are
    :class:`DiskBuffer`'s bounds (``max_messages``, ``max_bytes``, ``overflow``).
    """
    directory = Path(directory)
    buffer = DiskBuffer(directory / OUTBOX_NAME, **limits) if outbox else None
    try:
        sequencer = Sequencer(directory / SEQUENCE_NAME, outbox=buffer)
    except BaseException:
        if buffer is not None:
            buffer.close()
        raise
    return buffer, sequencer
