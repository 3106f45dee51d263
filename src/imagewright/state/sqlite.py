"""The default home of Dicts and Queues: one SQLite file, shared by the host and its containers.

Why SQLite: it needs no server to install, start or stop, it ships with Python (in the
container too: the file is bound in and opened by the image's own Python), and its locking
makes one file safe for many writing processes at once, on the host and in containers alike.
In WAL mode readers never block and are never blocked; every write is one BEGIN IMMEDIATE
transaction, so writers queue on the lock (busy_timeout) instead of failing half-way, and a
read-modify-write such as a queue pop cannot interleave with another. `synchronous=NORMAL`
loses no committed write when a process dies, only (at worst) the last ones on power loss,
which is the promise a local development store needs. WAL shares the -wal and -shm files next
to the database, so containers get the whole directory, read-write (execute/state.py).

Queue items are rows numbered by an always-growing sequence (FIFO order, and the positions
`iterate` resumes from). A blocking get polls, 1 ms at first and backing off to 50 ms, and only
takes the write lock once a read has seen an item. A partition is emptied once `partition_ttl`
seconds pass after its last put. Imported in containers (Python 3.9): sqlite3 is imported
when the first Dict or Queue is used.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..exception import ExecutionError
from .backend import PARTITION_LIMIT, gone, owner, owner_alive, pauses

if TYPE_CHECKING:
    import sqlite3

__all__ = ["FILENAME", "SqliteBackend"]

FILENAME = "state.db"
_BUSY_MS = 60_000  # how long a writer waits for the lock before giving up
# AUTOINCREMENT: ids are never reused, so a handle to a deleted object finds nothing
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS objects (
        id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, key TEXT NOT NULL,
        created REAL NOT NULL, owner TEXT, UNIQUE (kind, key))""",
    # a rowid table: items() gives entries in the order they were first put, as dict does
    """CREATE TABLE IF NOT EXISTS entries (
        object INTEGER NOT NULL REFERENCES objects (id) ON DELETE CASCADE,
        key BLOB NOT NULL, value BLOB NOT NULL, UNIQUE (object, key))""",
    """CREATE TABLE IF NOT EXISTS items (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        object INTEGER NOT NULL REFERENCES objects (id) ON DELETE CASCADE,
        partition BLOB NOT NULL, value BLOB NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS items_fifo ON items (object, partition, seq)",
    """CREATE TABLE IF NOT EXISTS partitions (
        object INTEGER NOT NULL REFERENCES objects (id) ON DELETE CASCADE,
        partition BLOB NOT NULL, expires REAL NOT NULL, PRIMARY KEY (object, partition))""",
)
_LIVE = "partition IN (SELECT partition FROM partitions WHERE object = ? AND expires >= ?)"


class SqliteBackend:
    """Dicts and Queues in `directory`/state.db; one connection per thread."""

    def __init__(self, directory: Path):
        self._directory = directory
        self._local = threading.local()
        self._ready = False
        self._ready_lock = threading.Lock()

    # ---- objects --------------------------------------------------------------------------

    def lookup(self, kind: str, key: str, create: bool) -> int | None:
        found = self._id(kind, key)
        if found is not None or not create:
            return found
        with self._write() as db:
            db.execute(
                "INSERT INTO objects (kind, key, created) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (kind, key, time.time()),
            )
        return self._id(kind, key)

    def create(self, kind: str, key: str, owner: str | None) -> int | None:
        with self._write() as db:
            made = db.execute(
                "INSERT INTO objects (kind, key, created, owner) VALUES (?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (kind, key, time.time(), owner),
            )
            return made.lastrowid if made.rowcount else None

    def delete(self, kind: str, key: str) -> bool:
        with self._write() as db:  # its entries, items and partitions go with it (CASCADE)
            deleted = db.execute("DELETE FROM objects WHERE kind = ? AND key = ?", (kind, key))
        return deleted.rowcount > 0

    def listing(self, kind: str) -> dict[str, float]:
        rows = self._db().execute("SELECT key, created FROM objects WHERE kind = ?", (kind,))
        return {key: created for key, created in rows}

    def _id(self, kind: str, key: str) -> int | None:
        row = (
            self._db()
            .execute("SELECT id FROM objects WHERE kind = ? AND key = ?", (kind, key))
            .fetchone()
        )
        return None if row is None else int(row[0])

    # ---- dicts ----------------------------------------------------------------------------

    def dict_get(self, oid: int, key: bytes) -> bytes | None:
        row = (
            self._db()
            .execute("SELECT value FROM entries WHERE object = ? AND key = ?", (oid, key))
            .fetchone()
        )
        return None if row is None else bytes(row[0])

    def dict_put(self, oid: int, entries: list[tuple[bytes, bytes]], if_missing: bool) -> bool:
        upsert = "NOTHING" if if_missing else "UPDATE SET value = excluded.value"
        sql = (
            "INSERT INTO entries (object, key, value) VALUES (?, ?, ?) "
            f"ON CONFLICT (object, key) DO {upsert}"
        )
        with self._write("dict") as db:
            written = db.executemany(sql, [(oid, k, v) for k, v in entries]).rowcount
        return written > 0 or not if_missing

    def dict_pop(self, oid: int, key: bytes) -> bytes | None:
        with self._write() as db:
            row = db.execute(
                "SELECT rowid, value FROM entries WHERE object = ? AND key = ?", (oid, key)
            ).fetchone()
            if row is None:
                return None
            db.execute("DELETE FROM entries WHERE rowid = ?", (row[0],))
            return bytes(row[1])

    def dict_contains(self, oid: int, key: bytes) -> bool:
        return (
            self._db()
            .execute("SELECT 1 FROM entries WHERE object = ? AND key = ?", (oid, key))
            .fetchone()
            is not None
        )

    def dict_len(self, oid: int) -> int:
        row = self._db().execute("SELECT count(*) FROM entries WHERE object = ?", (oid,))
        return int(row.fetchone()[0])

    def dict_items(self, oid: int) -> list[tuple[bytes, bytes]]:
        rows = self._db().execute(
            "SELECT key, value FROM entries WHERE object = ? ORDER BY rowid", (oid,)
        )
        return [(bytes(k), bytes(v)) for k, v in rows]

    def dict_clear(self, oid: int) -> None:
        with self._write() as db:
            db.execute("DELETE FROM entries WHERE object = ?", (oid,))

    # ---- queues ---------------------------------------------------------------------------

    def queue_put(self, oid: int, partition: bytes, values: list[bytes], ttl: int) -> bool:
        now = time.time()
        with self._write("queue") as db:
            self._expire(db, oid, now)
            held = db.execute(
                "SELECT count(*) FROM items WHERE object = ? AND partition = ?", (oid, partition)
            ).fetchone()[0]
            if held + len(values) > PARTITION_LIMIT:
                return False
            db.executemany(
                "INSERT INTO items (object, partition, value) VALUES (?, ?, ?)",
                [(oid, partition, v) for v in values],
            )
            db.execute(
                "INSERT INTO partitions (object, partition, expires) VALUES (?, ?, ?) "
                "ON CONFLICT (object, partition) DO UPDATE SET expires = excluded.expires",
                (oid, partition, now + ttl),
            )
        return True

    def queue_get(self, oid: int, partition: bytes, n: int, timeout: float | None) -> list[bytes]:
        taken = self._take(oid, partition, n)
        if taken:
            return taken
        for _ in pauses(timeout):
            taken = self._take(oid, partition, n)
            if taken:
                break
        return taken

    def queue_len(self, oid: int, partition: bytes | None) -> int:
        sql = f"SELECT count(*) FROM items WHERE object = ? AND {_LIVE}"
        args: tuple[object, ...] = (oid, oid, time.time())
        if partition is not None:
            sql, args = f"{sql} AND partition = ?", (*args, partition)
        return int(self._db().execute(sql, args).fetchone()[0])

    def queue_clear(self, oid: int, partition: bytes | None) -> None:
        args: tuple[object, ...] = (oid,)
        where = "object = ?"
        if partition is not None:
            where, args = "object = ? AND partition = ?", (oid, partition)
        with self._write() as db:
            db.execute(f"DELETE FROM items WHERE {where}", args)
            db.execute(f"DELETE FROM partitions WHERE {where}", args)

    def queue_after(self, oid: int, partition: bytes, last: int) -> list[tuple[int, bytes]]:
        rows = self._db().execute(
            "SELECT seq, value FROM items WHERE object = ? AND partition = ? AND seq > ? "
            f"AND {_LIVE} ORDER BY seq",
            (oid, partition, last, oid, time.time()),
        )
        return [(int(seq), bytes(value)) for seq, value in rows]

    def _take(self, oid: int, partition: bytes, n: int) -> list[bytes]:
        # a read first: waiters polling an empty queue never queue for the write lock
        seen = self._db().execute(
            "SELECT 1 FROM items WHERE object = ? AND partition = ? LIMIT 1", (oid, partition)
        )
        if seen.fetchone() is None:
            return []
        with self._write() as db:
            self._expire(db, oid, time.time())
            rows = db.execute(
                "SELECT seq, value FROM items WHERE object = ? AND partition = ? "
                "ORDER BY seq LIMIT ?",
                (oid, partition, n),
            ).fetchall()
            if rows:
                db.execute(
                    "DELETE FROM items WHERE object = ? AND partition = ? AND seq <= ?",
                    (oid, partition, rows[-1][0]),
                )
        return [bytes(value) for _, value in rows]

    @staticmethod
    def _expire(db: sqlite3.Connection, oid: int, now: float) -> None:
        """Empty the queue's partitions whose time to live has run out."""
        dead = "SELECT partition FROM partitions WHERE object = ? AND expires < ?"
        db.execute(f"DELETE FROM items WHERE object = ? AND partition IN ({dead})", (oid, oid, now))
        db.execute("DELETE FROM partitions WHERE object = ? AND expires < ?", (oid, now))

    # ---- connections ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _write(self, kind: str = "") -> Iterator[sqlite3.Connection]:
        """One write transaction, holding the database's write lock from its start."""
        import sqlite3

        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except sqlite3.IntegrityError:
            db.execute("ROLLBACK")
            raise gone(kind) from None  # the only constraint a write can break: its object
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._connect()
            self._local.db = db
        return db

    def _connect(self) -> sqlite3.Connection:
        try:
            import sqlite3
        except ImportError:
            raise ExecutionError(
                "Dict and Queue need Python's sqlite3 module, which this Python lacks: "
                "use an image whose Python has it, or set IMAGEWRIGHT_REDIS_URL"
            ) from None
        self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        db = sqlite3.connect(
            str(self._directory / FILENAME),
            timeout=_BUSY_MS / 1000,
            isolation_level=None,  # we say when transactions begin and end
            check_same_thread=False,
        )
        db.execute(f"PRAGMA busy_timeout = {_BUSY_MS}")
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA synchronous = NORMAL")
        with self._ready_lock:
            if not self._ready:
                db.execute("PRAGMA journal_mode = WAL")  # kept in the file: a no-op once set
                self._local.db = db
                with self._write() as tx:
                    for statement in _SCHEMA:
                        tx.execute(statement)
                self._reap(db)
                self._ready = True
        return db

    def _reap(self, db: sqlite3.Connection) -> None:
        """Delete the ephemeral objects whose process died before it could."""
        if owner() is None:
            return
        rows = db.execute("SELECT id, owner FROM objects WHERE owner IS NOT NULL").fetchall()
        dead = [(oid,) for oid, who in rows if not owner_alive(who)]
        if dead:
            with self._write() as tx:
                tx.executemany("DELETE FROM objects WHERE id = ?", dead)
