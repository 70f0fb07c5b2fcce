"""Sequence ids for result payloads: strictly increasing per device, never reused.

Consumers de-duplicate on ``(device, seq)``, so an id handed out twice makes a result
vanish and a skipped id looks like a loss. :class:`Sequencer` persists its counter
(``sequence.sqlite``) and starts above the high-water mark of the outbox beside it, so a
lost or damaged sequence file never restarts ids below stored ones; attached to the outbox
it persists nothing itself (the id commits with the message). Each sequencer has an
``epoch`` that changes only when its state starts from nothing, and after an unclean stop
the ids that may never have been published are reported once (:meth:`Sequencer.take_gap`).
See docs/payload-schema.md ("Gaps and epochs"). Python 3.8-compatible, stdlib only.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Optional, Tuple, Union

from .state import DirLock, open_checked, salvage_rows, state_error

if TYPE_CHECKING:  # pragma: no cover
    from .buffer import DiskBuffer

PathLike = Union[str, "os.PathLike[str]"]
OUTBOX_NAME = "outbox.sqlite"
SEQUENCE_NAME = "sequence.sqlite"
#: With an outbox attached, ids are also reserved on disk in blocks of this many (one
#: write per block), so that losing the outbox itself after a crash never reuses an id.
RESERVE_BLOCK = 100
META_SQL = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)"


def outbox_high_water(path: PathLike) -> int:
    """The highest id an outbox file ever stored (0 when absent or unreadable)."""
    path = Path(path)
    if not path.is_file():
        return 0
    best = 0
    for sql in ("SELECT value FROM meta WHERE key='high_water'", "SELECT MAX(seq) FROM queue"):
        try:
            conn = sqlite3.connect("file:{}?mode=ro".format(path), uri=True, timeout=5.0)
            try:
                row = conn.execute(sql).fetchone()
            finally:
                conn.close()
        except sqlite3.Error:
            continue
        if row is not None and row[0] is not None:
            best = max(best, int(row[0]))
    return best


class Sequencer:
    """Strictly increasing sequence ids that survive a restart (SQLite ``meta`` rows).

    ``path=None`` keeps the counter in memory (tests, one-shot runs). ``floor``: the
    smallest id to hand out (default: above the high-water mark of the ``outbox.sqlite``
    beside ``path``, so a lost sequence file never restarts ids below stored ones).

    ``outbox``: the :class:`DiskBuffer` every result is committed to *before* it goes
    anywhere else (:func:`~caltech_edge.runtime.loop.run` publishes to it first). Then an
    id is durable exactly when its message is -- the outbox's high-water mark commits in
    the message's transaction -- so ``next()`` writes nothing (half the per-result cost)
    and a ``kill -9`` leaves no gap: an id whose message never committed was never sent.
    Ids are still reserved on disk in blocks of :data:`RESERVE_BLOCK` (``reserved_until``):
    if the outbox itself is lost or damaged after a crash (its high-water mark is then
    behind the last block), ids restart after the block and the skipped ones are
    announced as a gap.
    """

    def __init__(
        self,
        path: Optional[PathLike] = None,
        *,
        start: int = 1,
        floor: Optional[int] = None,
        outbox: Optional["DiskBuffer"] = None,
    ) -> None:
        self._lock = threading.Lock()
        self._conn = None  # type: Optional[sqlite3.Connection]
        self._dirlock = None  # type: Optional[DirLock]
        self._next = int(start)
        self._limit = 0  # ids below this are reserved on disk (outbox mode)
        self._gap = None  # type: Optional[Dict[str, int]]
        self.epoch = "{:012x}".format(random.SystemRandom().getrandbits(48))
        self.quarantined = None  # type: Optional[Path]
        self.outbox = outbox
        if outbox is not None and floor is None:
            floor = outbox.high_water + 1
        if floor is not None:
            self._next = max(self._next, int(floor))
        self.path = Path(path) if path is not None else None
        if path is not None:
            path = Path(path)
            self._dirlock = DirLock(path.parent)
            try:
                self._open(path, floor)
            except BaseException:
                self._dirlock.release()
                raise

    def _open(self, path: Path, floor: Optional[int]) -> None:
        self._conn, self.quarantined = open_checked(path, [META_SQL], what="sequence file")
        source = self.quarantined or path
        saved = {str(k): int(v) for k, v in salvage_rows(source, "meta", "key, value")}
        if floor is None:
            floor = outbox_high_water(path.parent / OUTBOX_NAME) + 1
        stored = int(floor) - 1  # ids up to here are safely stored in the outbox
        if "epoch" in saved:
            self.epoch = "{:012x}".format(saved["epoch"])
        reserved = saved.get("next_seq", 1)
        self._next = max(self._next, reserved, stored + 1)
        done = saved.get("done")
        if done is not None and max(done, stored) + 1 <= reserved - 1:
            # taken by a run that died before finishing them: announce, never reuse
            self._gap = {"first": max(done, stored) + 1, "last": reserved - 1}
        self._limit = saved.get("reserved_until", 0)
        if stored < self._limit - RESERVE_BLOCK:  # the outbox is behind the last reserved block
            self._next = max(self._next, self._limit)
            first = max(stored + 1, reserved)
            if first <= self._limit - 1:
                old = self._gap or {"first": first, "last": self._limit - 1}
                self._gap = {"first": min(first, old["first"]), "last": self._limit - 1}
        self._write(("epoch", int(self.epoch, 16)), ("next_seq", self._next))
        if self._gap is None:
            self._write(("done", self._next - 1))

    def _write(self, *pairs: Tuple[str, int]) -> None:
        if self._conn is None:
            return
        sql = "INSERT OR REPLACE INTO meta(key, value) VALUES " + ", ".join(["(?, ?)"] * len(pairs))
        try:  # one statement: one transaction, one fsync
            self._conn.execute(sql, [v for pair in pairs for v in pair])
        except sqlite3.Error as exc:
            raise state_error(Path(str(self.path)), exc) from None

    def next(self) -> int:
        """Reserve and persist the next id before returning it (never reused, even on crash).

        The previous id counts as finished once the next one is asked for (the device loop
        is sequential), so after a ``kill -9`` at most the id in flight is reported as a gap.
        With an ``outbox`` the id is persisted by the outbox commit instead (see the class).
        """
        with self._lock:
            seq = self._next
            self._next += 1
            if self.outbox is None:
                self._write(("next_seq", self._next), ("done", seq - 1))
            elif seq >= self._limit:
                self._limit = seq + RESERVE_BLOCK
                self._write(("reserved_until", self._limit))
            return seq

    def take_gap(self) -> Optional[Dict[str, int]]:
        """The ids a previous, killed run reserved but may not have published (once)."""
        with self._lock:
            gap, self._gap = self._gap, None
            return gap

    @property
    def peek(self) -> int:
        return self._next

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._write(
                    ("next_seq", self._next),
                    ("done", self._next - 1),
                    ("reserved_until", self._next),
                )
            finally:
                self._conn.close()
                self._conn = None
        if self._dirlock is not None:
            self._dirlock.release()
            self._dirlock = None
