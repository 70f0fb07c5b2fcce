"""The device's on-disk state: one owner per directory, damaged files set aside, not fatal.

A camera runs unattended, so its state files (``outbox.sqlite``, ``sequence.sqlite``) must
never be the reason it stops:

* :class:`DirLock` -- ``fcntl.flock`` on ``<dir>/caltech-edge.lock`` (holder pid inside):
  two processes sharing one state directory would reuse sequence ids and overwrite each
  other's unsent results, so the second is refused with a message naming the holder. The
  kernel drops the lock when its holder dies (``kill -9`` included): no stale lock files.
  Within one process the lock is shared (reference counted).
* :func:`open_checked` -- opens a SQLite file, runs ``PRAGMA quick_check`` and, when the
  file is damaged (random bytes, truncated, garbage mid-page, a directory in its place),
  renames it aside (``NAME.corrupt-<UTC time>``), says so, and starts a fresh file; the
  caller copies what can still be read with :func:`salvage_rows`.
* A full disk is reported as :class:`~caltech_edge.errors.StateError` with SQLite's own
  words, "database or disk is full", and the directory to clean.

Python 3.8-compatible, stdlib only.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..errors import ConfigError, StateError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock, no protection
    fcntl = None  # type: ignore

log = logging.getLogger(__name__)

LOCK_NAME = "caltech-edge.lock"
_HELD: Dict[str, List[Any]] = {}  # resolved dir -> [fd, refcount], this process
_DAMAGE_WORDS = ("not a database", "malformed", "corrupt", "unable to open", "disk i/o error")


def ensure_dir(path: Path, option: str = "--buffer-dir") -> Path:
    """Create ``path``; a file in its place is a configuration error naming ``option``."""
    if path.exists() and not path.is_dir():
        raise ConfigError(
            "{} {} is a file, not a directory; give a directory path (it holds the outbox "
            "and sequence state)".format(option, path)
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError("{} {}: cannot create it ({})".format(option, path, exc)) from None
    return path


class DirLock:
    """An exclusive, process-wide ``flock`` on a state directory (see the module doc)."""

    _guard = threading.Lock()

    def __init__(self, directory: Path) -> None:
        self.directory = ensure_dir(Path(directory))
        self._key = str(self.directory.resolve())
        self._released = False
        with DirLock._guard:
            entry = _HELD.get(self._key)
            if entry is not None:
                entry[1] += 1
                return
            _HELD[self._key] = [self._acquire(), 1]

    def _acquire(self) -> int:
        path = self.directory / LOCK_NAME
        try:
            fd = os.open(str(path), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(
                "state directory {}: cannot create {} ({}); give a writable --buffer-dir".format(
                    self.directory, LOCK_NAME, exc.strerror or exc
                )
            ) from None
        if fcntl is None:  # pragma: no cover
            return fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise ConfigError(
                "state directory {} is in use by another process (pid {}); two processes on "
                "one outbox would reuse sequence ids. Give each camera its own --device "
                "(default dir ~/.caltech-edge/<device>) or --buffer-dir".format(
                    self.directory, holder
                )
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode("ascii"))
        return fd

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        with DirLock._guard:
            entry = _HELD.get(self._key)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] == 0:
                del _HELD[self._key]
                os.close(entry[0])  # closing the descriptor releases the flock


def connect(path: Path) -> sqlite3.Connection:
    """WAL + ``synchronous=FULL``: a committed transaction is on disk when commit returns."""
    conn = sqlite3.connect(str(path), timeout=30.0, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def is_disk_full(exc: BaseException) -> bool:
    return "database or disk is full" in str(exc)


def state_error(path: Path, exc: BaseException) -> StateError:
    """A one-line error for a SQLite failure on a state file (disk full said as such)."""
    if is_disk_full(exc):
        return StateError(
            "{}: database or disk is full; free space in {} (or lower --buffer-max-bytes)".format(
                path, path.parent
            )
        )
    return StateError("{}: {} ({})".format(path, exc, type(exc).__name__))


def quarantine(path: Path) -> Path:
    """Rename ``path`` and its ``-wal``/``-shm`` companions aside; return the new name."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    moved = path.with_name("{}.corrupt-{}".format(path.name, stamp))
    n = 1
    while moved.exists():
        moved = path.with_name("{}.corrupt-{}-{}".format(path.name, stamp, n))
        n += 1
    os.replace(str(path), str(moved))
    for suffix in ("-wal", "-shm"):
        side = Path(str(path) + suffix)
        if side.exists():
            os.replace(str(side), str(moved) + suffix)
    return moved


def _try_open(path: Path, schema: Sequence[str]) -> Tuple[Optional[sqlite3.Connection], str]:
    """(connection, "") when ``path`` is healthy, else (None, what is wrong)."""
    if path.is_dir():
        return None, "a directory is in its place"
    conn = None
    try:
        conn = connect(path)
        row = conn.execute("PRAGMA quick_check(1)").fetchone()
        if row is None or row[0] != "ok":
            problem = row[0] if row else "quick_check returned nothing"
            conn.close()
            return None, str(problem)
        for sql in schema:
            conn.execute(sql)
        return conn, ""
    except sqlite3.DatabaseError as exc:
        if conn is not None:
            conn.close()
        if is_disk_full(exc):
            raise state_error(path, exc) from None
        if not any(word in str(exc).lower() for word in _DAMAGE_WORDS):
            raise state_error(path, exc) from None
        return None, str(exc)


def open_checked(
    path: Path, schema: Sequence[str], *, what: str
) -> Tuple[sqlite3.Connection, Optional[Path]]:
    """Open a healthy state file; a damaged one is quarantined and replaced by a fresh one.

    Returns ``(connection, quarantined path or None)``. ``schema`` are idempotent
    ``CREATE TABLE IF NOT EXISTS`` statements.
    """
    if path.exists() and not os.access(str(path), os.R_OK | os.W_OK):
        raise StateError("{}: permission denied; make it readable and writable".format(path))
    conn, problem = _try_open(path, schema)
    if conn is not None:
        return conn, None
    moved = quarantine(path)
    log.warning(
        "%s %s is damaged (%s): moved it aside to %s and started a new one",
        what,
        path,
        problem,
        moved.name,
    )
    conn, problem = _try_open(path, schema)
    if conn is None:
        raise StateError("{}: cannot create a new {} ({})".format(path, what, problem))
    return conn, moved


def salvage_rows(path: Path, table: str, columns: str) -> List[Tuple[Any, ...]]:
    """Rows of ``table`` still readable in a damaged file, keyed by the first column.

    A full scan stops at the first bad page, so the table is also read from the other end
    (descending key): rows on both sides of one damaged page are recovered, and a
    truncated file gives the rows on its remaining pages.
    """
    if not path.is_file():
        return []
    rows: Dict[Any, Tuple[Any, ...]] = {}
    try:
        conn = sqlite3.connect(str(path), timeout=5.0, isolation_level=None)
    except sqlite3.Error:
        return []
    key = columns.split(",")[0].strip()
    try:
        # a truncated file's header promises more pages than exist; SQLite refuses to read
        # it unless the schema is "writable" (we only read)
        conn.execute("PRAGMA writable_schema=ON")
        for order in ("ASC", "DESC"):
            try:
                cursor = conn.execute(
                    "SELECT {} FROM {} ORDER BY {} {}".format(columns, table, key, order)
                )
                for row in cursor:
                    rows[row[0]] = tuple(row)
            except sqlite3.Error:
                continue
    finally:
        conn.close()
    return [rows[k] for k in sorted(rows)]
