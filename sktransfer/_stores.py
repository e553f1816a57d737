"""The stores behind the embedding cache, and the one call an encoder makes.

:meth:`_Store.rows_for` is the whole protocol: given one key per sample (``None``
for a sample that cannot be cached), it serves the stored rows, computes each
distinct missing one once -- claiming it first, so that processes sharing a disk
store split the work, and waiting a bounded time for rows another process
claimed -- stores what was computed and returns the rows in input order. The
encoders know nothing else about stores.

:class:`MemoryStore` is the process-wide LRU (``cache="memory"``);
:class:`SQLiteStore` the database in a directory shared by processes. The public
functions that name a store by an encoder's ``cache`` value are in
:mod:`sktransfer.cache`; the keys come from :mod:`sktransfer._fingerprint`.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DB_NAME = "sktransfer-embeddings.sqlite3"
_DEFAULT_MEMORY_LIMIT_MB = 1024.0


@dataclass
class CacheStats:
    """Counts for one store since it was opened (or cleared) in this process.

    Attributes
    ----------
    hits : int
        Samples served from the cache.
    misses : int
        Samples that had to be encoded.
    entries : int
        Vectors currently stored.
    nbytes : int
        Bytes of vectors currently stored.
    rejected : int
        Stored vectors found corrupt (checksum, width or dtype) and recomputed.
    """

    hits: int = 0
    misses: int = 0
    entries: int = 0
    nbytes: int = 0
    rejected: int = 0
    extra: dict = field(default_factory=dict, repr=False)

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


def _in_chunks(keys: list, size: int = 500):
    """``(chunk, "?,?,...")`` pairs: SQLite limits the parameters of one statement."""
    for start in range(0, len(keys), size):
        chunk = keys[start : start + size]
        yield chunk, ",".join("?" * len(chunk))


def _checksum(key: bytes, dim: int, dtype: str, data: bytes) -> int:
    """CRC-32 of a whole row: a vector is only valid under its own key, width and dtype.

    Rows written before the key was covered (sktransfer 0.1.0.dev0) fail this check
    and are recomputed, never served.
    """
    crc = zlib.crc32(bytes(key))
    crc = zlib.crc32(f"|{dim}|{dtype}|".encode(), crc)
    return zlib.crc32(data, crc) & 0xFFFFFFFF


# Keys computed in the first slice of a long computation, before its speed is known.
_FIRST_SLICE = 64


class _Store:
    """The one call an encoder makes: :meth:`rows_for`.

    Subclasses provide ``get_many``, ``put_many``, ``claim``, ``wait_for`` and
    ``release``; this class runs the protocol between them.
    """

    stats: CacheStats

    def rows_for(self, keys: list[bytes | None], dim: int, compute) -> tuple[np.ndarray, list[int]]:
        """Row ``i`` for sample ``i``: stored, or computed once per distinct key, then stored.

        ``keys[i]`` is sample ``i``'s cache key, or ``None`` for a sample that
        cannot be cached (computed first, so that an error names it at once;
        never stored). ``compute(positions)`` returns ``(vectors, failed)``: one
        row per position, in order, and the indices (into ``positions``) of rows
        that must not be stored (samples that failed and were filled).

        Returns the rows and the positions of every sample whose row is such a fill.
        """
        first: dict[bytes, int] = {}
        for i, key in enumerate(keys):
            if key is not None:
                first.setdefault(key, i)
        uncacheable = [i for i, key in enumerate(keys) if key is None]
        failed: list[int] = []
        out = np.empty((len(keys), dim), dtype=np.float32)
        if uncacheable:
            vectors, bad = compute(uncacheable)
            out[uncacheable] = vectors
            failed.extend(uncacheable[j] for j in bad)

        failed_keys: set[bytes] = set()
        encoded: list[tuple[list, np.ndarray]] = []

        def compute_keys(batch: list[bytes]):
            vectors, bad = compute([first[k] for k in batch])
            bad_keys = {batch[j] for j in bad}
            failed_keys.update(bad_keys)
            encoded.append((batch, vectors))
            return vectors, bad_keys

        rows = self.get_or_compute(list(first), dim, compute_keys)
        if len(encoded) == 1 and encoded[0][0] == keys:
            # Every sample distinct, new and computed here, in input order: the
            # computed array is the answer (no second copy of the whole output).
            failed.extend(i for i, key in enumerate(keys) if key in failed_keys)
            return encoded[0][1], failed
        for i, key in enumerate(keys):
            if key is not None:
                out[i] = rows[key]
                if key in failed_keys:
                    failed.append(i)
        return out, failed

    def get_or_compute(self, keys: list[bytes], dim: int, compute) -> dict[bytes, np.ndarray]:
        """Vectors of ``keys`` (distinct): stored ones, and the rest from ``compute``.

        ``compute(some_keys)`` returns ``(vectors, bad)``: an array with one row per
        key, in order, and the set of keys whose row must not be stored (e.g. a
        sample that failed and was filled). Missing keys are claimed first; keys
        another process has claimed are waited for (a bounded time, see
        :meth:`SQLiteStore.wait_for`) and computed here if they do not arrive.
        """
        found = self.get_many(keys, dim)
        missing = [k for k in keys if k not in found]
        self.stats.hits += len(found)
        self.stats.misses += len(missing)
        rows = dict(found)
        if missing:
            mine = self.claim(missing)
            rows.update(self._compute_and_put(mine, compute))
            others = [k for k in missing if k not in rows]
            if others:
                rows.update(self.wait_for(others, dim))
                rows.update(self._compute_and_put([k for k in others if k not in rows], compute))
        return rows

    # Seconds of work after which computed rows are stored, so that other
    # processes waiting for them see progress; None computes all keys at once.
    STORE_EVERY_SECONDS: float | None = None

    def _compute_and_put(self, keys: list[bytes], compute) -> dict[bytes, np.ndarray]:
        computed: dict[bytes, np.ndarray] = {}
        start, size = 0, len(keys)
        if self.STORE_EVERY_SECONDS is not None:
            size = min(size, _FIRST_SLICE)
        while start < len(keys):
            batch = keys[start : start + size]
            began = time.perf_counter()
            try:
                vectors, bad = compute(batch)
            except BaseException:
                self.release(keys[start:])
                raise
            rows = dict(zip(batch, vectors, strict=True))
            self.put_many({k: v for k, v in rows.items() if k not in bad})
            self.release([k for k in batch if k in bad])
            computed.update(rows)
            start += len(batch)
            if self.STORE_EVERY_SECONDS is not None:
                # Size the next slice to about STORE_EVERY_SECONDS of work.
                per_key = (time.perf_counter() - began) / len(batch)
                size = int(min(max(self.STORE_EVERY_SECONDS / max(per_key, 1e-9), 16), 8192))
        return computed


class MemoryStore(_Store):
    """Process-wide LRU store of float32 vectors, bounded in bytes."""

    def __init__(self, limit_mb: float = _DEFAULT_MEMORY_LIMIT_MB):
        self._lock = threading.Lock()
        self._data: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._nbytes = 0
        self.limit_bytes = int(limit_mb * 2**20)
        self.stats = CacheStats()

    def get_many(self, keys: list[bytes], dim: int) -> dict[bytes, np.ndarray]:
        found = {}
        with self._lock:
            for key in keys:
                vector = self._data.get(key)
                if vector is None:
                    continue
                if vector.shape != (dim,) or vector.dtype != np.float32:
                    self._drop(key)
                    self.stats.rejected += 1
                    continue
                self._data.move_to_end(key)
                found[key] = vector
        return found

    def put_many(self, items: dict[bytes, np.ndarray]) -> None:
        with self._lock:
            for key, vector in items.items():
                vector = np.array(vector, dtype=np.float32, copy=True)
                vector.setflags(write=False)
                if key in self._data:
                    self._drop(key)
                self._data[key] = vector
                self._nbytes += vector.nbytes
            while self._nbytes > self.limit_bytes and self._data:
                self._drop(next(iter(self._data)))

    def claim(self, keys):  # a single process needs no claims
        return list(keys)

    def wait_for(self, keys, dim):  # pragma: no cover - never claimed elsewhere
        return {}

    def release(self, keys) -> None:
        pass

    def _drop(self, key: bytes) -> None:
        vector = self._data.pop(key)
        self._nbytes -= vector.nbytes

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._nbytes = 0
            self.stats = CacheStats()

    def info(self) -> CacheStats:
        with self._lock:
            self.stats.entries = len(self._data)
            self.stats.nbytes = self._nbytes
            return CacheStats(**{**self.stats.__dict__, "extra": {"limit_bytes": self.limit_bytes}})


# SQLite primary result codes (the low byte of an extended code).
_SQLITE_READONLY = 8
_SQLITE_CORRUPT = 11
_SQLITE_CANTOPEN = 14
_SQLITE_NOTADB = 26

_EMBEDDING_COLUMNS = ["key", "dim", "dtype", "crc", "data", "n_writes"]
_CLAIM_COLUMNS = ["key", "pid", "since"]


def _sqlite_code(exc: sqlite3.Error) -> int:
    return (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def _cache_warning(message: str) -> None:
    import warnings

    from sktransfer.exceptions import CacheWarning

    warnings.warn(message, CacheWarning, stacklevel=4)


def _cache_error(message: str):
    from sktransfer.exceptions import CacheError

    return CacheError(message)


class _Corrupt(Exception):
    """Internal: the database file failed SQLite's own checks."""


class SQLiteStore(_Store):
    """Embeddings in an SQLite database shared by processes.

    Table ``embeddings(key, dim, dtype, crc, data, n_writes)``; a vector is
    written in one transaction, so a crash leaves either the whole row or none,
    and its checksum covers key, width, dtype and bytes.
    ``claims(key, pid, since)`` lets concurrent processes split the work.

    Faults: a file that SQLite finds damaged is moved aside (renamed with a
    timestamp) and a new one started, with a :class:`~sktransfer.exceptions.CacheWarning`;
    a database that is not an sktransfer cache raises
    :class:`~sktransfer.exceptions.CacheError` and is left untouched; a read-only
    directory or file is read but never written (one ``CacheWarning``).
    """

    # A claim older than this is assumed abandoned (its process died or hung).
    CLAIM_TTL = 600.0
    # How long to wait for samples another process claimed when none of them
    # arrives (the owner may be stopped, paused in a debugger or frozen); then
    # they are encoded here. A duplicate computation is correct, a hang is not.
    CLAIM_STALL_SECONDS = 30.0
    # The longest wait for claimed samples, even while some keep arriving.
    CLAIM_WAIT_SECONDS = 900.0
    # The owner of a claim stores what it computed about this often, so waiters
    # see progress well within CLAIM_STALL_SECONDS however slow the model is.
    STORE_EVERY_SECONDS = 5.0

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory).expanduser().resolve()
        self.path = self.directory / DB_NAME
        self.stats = CacheStats()
        self._local = threading.local()
        self._generation = 0
        self._fault_lock = threading.Lock()
        self.readonly = False
        self._unusable = False  # damaged and read-only: nothing is read from it
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # no permission, read-only file system
            self._become_readonly(f"the directory cannot be created ({exc})")
        if not self.readonly and not self._writable():
            self._become_readonly("the directory or the file is not writable")
        self._run(self._setup)

    def _writable(self) -> bool:
        if not os.access(self.directory, os.W_OK):
            return False
        return not self.path.exists() or os.access(self.path, os.W_OK)

    # ------------------------------------------------------------ connections
    def _connect(self) -> sqlite3.Connection | None:
        """This thread's connection (None: a read-only store without a file)."""
        local = self._local
        if (
            getattr(local, "pid", None) == os.getpid()
            and getattr(local, "generation", None) == self._generation
        ):
            return local.con
        old = getattr(local, "con", None)
        if old is not None and getattr(local, "pid", None) == os.getpid():
            old.close()
        if self._unusable:
            con = None
        elif self.readonly:
            con = self._open_readonly()
        else:
            con = self._open_readwrite()
        local.con, local.pid, local.generation = con, os.getpid(), self._generation
        return con

    def _open_readwrite(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        try:
            self._check_schema(con)  # before anything is written to a file that is not ours
            _set_wal(con)
            con.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            con.close()
            raise
        return con

    def _open_readonly(self) -> sqlite3.Connection | None:
        if not self.path.exists():
            return None
        uri = self.path.as_uri()
        con = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=60.0, isolation_level=None)
        try:
            con.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError as exc:
            # A WAL database needs its -shm file, which a read-only directory
            # cannot hold: read the file as it is (nobody can write it either).
            if _sqlite_code(exc) not in (_SQLITE_CANTOPEN, _SQLITE_READONLY):
                raise
            con.close()
            con = sqlite3.connect(
                f"{uri}?mode=ro&immutable=1", uri=True, timeout=60.0, isolation_level=None
            )
        try:
            self._check_schema(con)
        except BaseException:
            con.close()
            raise
        return con

    def __getstate__(self):  # connections do not cross processes
        return {"directory": self.directory}

    def __setstate__(self, state):
        self.__init__(state["directory"])

    # ----------------------------------------------------------------- faults
    def _run(self, operation, *args):
        """``operation(con, *args)``, surviving a damaged file or a read-only one."""
        for attempt in range(3):
            try:
                return operation(self._connect(), *args)
            except sqlite3.DatabaseError as exc:
                code = _sqlite_code(exc)
                if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB) and attempt < 2:
                    self._recover_from_damage(exc)
                elif code == _SQLITE_READONLY and not self.readonly:
                    self._become_readonly(f"writing failed ({exc})")
                else:
                    if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
                        raise _cache_error(
                            f"The embedding cache {self.path} is damaged ({exc}) and could "
                            "not be replaced. Delete it (its vectors are recomputed) or "
                            "point cache= at another directory."
                        ) from exc
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _become_readonly(self, why: str) -> None:
        with self._fault_lock:
            if self.readonly:
                return
            self.readonly = True
            self._generation += 1
        _cache_warning(
            f"The embedding cache {self.path} is read-only: {why}. Stored vectors are "
            "served, new ones are encoded but not stored. Make the directory writable "
            "or point cache= at another directory to store them."
        )

    def _recover_from_damage(self, exc: sqlite3.DatabaseError) -> None:
        """Move a damaged database aside and start a new one (or serve nothing)."""
        with self._fault_lock, _file_lock(self.path):
            self._generation += 1
            con = getattr(self._local, "con", None)
            if con is not None and getattr(self._local, "pid", None) == os.getpid():
                con.close()
            self._local.__dict__.clear()
            if not _is_damaged(self.path):
                return  # another process already replaced it: reconnect
            if self.readonly:  # cannot be replaced: serve nothing from it
                self._unusable = True
                _cache_warning(
                    f"The embedding cache {self.path} is damaged ({exc}) and read-only: "
                    "it is not used. Delete it to start a new one."
                )
                return
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{os.getpid()}")
            for suffix in ("-wal", "-shm", ""):
                part = self.path.with_name(self.path.name + suffix)
                if part.exists():
                    part.rename(aside.with_name(aside.name + suffix))
        _cache_warning(
            f"The embedding cache {self.path} was damaged ({exc}); it was moved to "
            f"{aside} and a new cache started (its vectors are recomputed). Delete "
            f"{aside} once you no longer need it."
        )
        self._run(self._setup)

    # ----------------------------------------------------------------- schema
    def _check_schema(self, con: sqlite3.Connection) -> None:
        """Raise CacheError unless the database is empty or an sktransfer cache."""
        tables = {
            name: [row[1] for row in con.execute(f"PRAGMA table_info({name})")]
            for (name,) in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            ).fetchall()
        }
        expected = {"embeddings": _EMBEDDING_COLUMNS, "claims": _CLAIM_COLUMNS}
        foreign = {n: c for n, c in tables.items() if expected.get(n) != c}
        if foreign:
            described = ", ".join(f"{n}({', '.join(c)})" for n, c in sorted(foreign.items()))
            raise _cache_error(
                f"{self.path} is an SQLite database but not an sktransfer embedding cache "
                f"(unexpected tables: {described}). It was left untouched. Point cache= at "
                f"another directory, or move or delete the file if it holds nothing you need."
            )

    def _setup(self, con: sqlite3.Connection | None) -> None:
        if con is None or self.readonly:
            return
        con.execute(
            "CREATE TABLE IF NOT EXISTS embeddings (key BLOB PRIMARY KEY, dim INTEGER, "
            "dtype TEXT, crc INTEGER, data BLOB, n_writes INTEGER DEFAULT 1)"
        )
        con.execute(
            "CREATE TABLE IF NOT EXISTS claims (key BLOB PRIMARY KEY, pid INTEGER, since REAL)"
        )

    # -------------------------------------------------------------- the store
    def get_many(self, keys: list[bytes], dim: int) -> dict[bytes, np.ndarray]:
        return self._run(self._get_many, keys, dim)

    def _get_many(self, con, keys, dim):
        found: dict[bytes, np.ndarray] = {}
        if con is None:
            return found
        bad = []
        for chunk, marks in _in_chunks(keys):
            rows = con.execute(
                f"SELECT key, dim, dtype, crc, data FROM embeddings WHERE key IN ({marks})",
                chunk,
            ).fetchall()
            for key, row_dim, dtype, crc, data in rows:
                if (
                    row_dim != dim
                    or dtype != "float32"
                    or data is None
                    or len(data) != 4 * dim
                    or _checksum(key, row_dim, dtype, data) != crc
                ):
                    bad.append(key)
                    continue
                found[bytes(key)] = np.frombuffer(data, dtype=np.float32)
        if bad:
            self.stats.rejected += len(bad)
            if not self.readonly:
                with _transaction(con):
                    con.executemany("DELETE FROM embeddings WHERE key = ?", [(k,) for k in bad])
        return found

    def put_many(self, items: dict[bytes, np.ndarray]) -> None:
        rows = []
        for key, vector in items.items():
            data = np.ascontiguousarray(vector, dtype=np.float32).tobytes()
            dim = len(data) // 4
            rows.append((key, dim, "float32", _checksum(key, dim, "float32", data), data))
        if rows:
            self._run(self._put_many, rows)

    # Storing a row also drops its claim: waiting processes see the row, not the claim.
    _PUT_SQL = (
        "INSERT INTO embeddings (key, dim, dtype, crc, data) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT(key) DO UPDATE SET dim=excluded.dim, dtype=excluded.dtype, "
        "crc=excluded.crc, data=excluded.data, n_writes=n_writes + 1"
    )

    def _put_many(self, con, rows):
        self._write(
            con,
            (self._PUT_SQL, rows),
            ("DELETE FROM claims WHERE key = ?", [(r[0],) for r in rows]),
        )

    def _write(self, con, *statements) -> None:
        """Run ``(sql, rows)`` statements in one transaction (nothing on a read-only store)."""
        if self.readonly:
            return
        with _transaction(con):
            for sql, rows in statements:
                con.executemany(sql, rows)

    def claim(self, keys: list[bytes]) -> list[bytes]:
        """Claim ``keys`` for this process; return those that are now ours."""
        return self._run(self._claim, keys)

    def _claim(self, con, keys):
        if self.readonly:  # nothing is stored: waiting for others would gain nothing
            return list(keys)
        pid = os.getpid()
        now = time.time()
        with _transaction(con):
            # Abandoned claims: their process is gone or they are too old.
            stale = [
                (k,)
                for k, owner, since in con.execute("SELECT key, pid, since FROM claims")
                if owner != pid and (now - since > self.CLAIM_TTL or not _pid_alive(owner))
            ]
            con.executemany("DELETE FROM claims WHERE key = ?", stale)
            con.executemany(
                "INSERT OR IGNORE INTO claims (key, pid, since) VALUES (?, ?, ?)",
                [(k, pid, now) for k in keys],
            )
            mine = set()
            for chunk, marks in _in_chunks(keys):
                mine.update(
                    bytes(k)
                    for (k,) in con.execute(
                        f"SELECT key FROM claims WHERE pid = ? AND key IN ({marks})",
                        [pid, *chunk],
                    )
                )
        return [k for k in keys if k in mine]

    def release(self, keys: list[bytes]) -> None:
        """Drop this process's claims on ``keys`` (after an error)."""
        if keys:
            self._run(self._release, keys)

    def _release(self, con, keys):
        pid = os.getpid()
        self._write(con, ("DELETE FROM claims WHERE key = ? AND pid = ?", [(k, pid) for k in keys]))

    def wait_for(self, keys: list[bytes], dim: int) -> dict[bytes, np.ndarray]:
        """Wait until other processes store ``keys``; return what arrived in time.

        Waiting stops when every key has arrived, when the claims left belong to
        no live process, after :attr:`CLAIM_STALL_SECONDS` without any key
        arriving (the owner may be stopped), or after :attr:`CLAIM_WAIT_SECONDS`
        in all. The caller computes what did not arrive.
        """
        pending = list(keys)
        found: dict[bytes, np.ndarray] = {}
        start = last_progress = time.monotonic()
        delay = 0.01
        while pending:
            arrived = self.get_many(pending, dim)
            now = time.monotonic()
            if arrived:
                found.update(arrived)
                last_progress = now
                pending = [k for k in pending if k not in found]
            if (
                not pending
                or now - last_progress > self.CLAIM_STALL_SECONDS
                or now - start > self.CLAIM_WAIT_SECONDS
            ):
                break
            # Claims that vanished without a result (owner died, error) are ours to do.
            pending = self._run(self._live_claims, pending)
            if not pending:
                break
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        return found

    def _live_claims(self, con, keys):
        if con is None or self.readonly:
            return []
        claimed = set()
        for chunk, marks in _in_chunks(keys):
            claimed.update(
                bytes(k)
                for (k, owner) in con.execute(
                    f"SELECT key, pid FROM claims WHERE key IN ({marks})", chunk
                )
                if _pid_alive(owner)
            )
        return [k for k in keys if k in claimed]

    def clear(self) -> None:
        self._run(self._clear)
        self.stats = CacheStats()

    def _clear(self, con):
        if self.readonly:
            raise _cache_error(
                f"The embedding cache {self.path} is read-only and cannot be cleared. Make "
                "its directory writable, or delete the file yourself."
            )
        if con is None:
            return
        with _transaction(con):
            con.execute("DELETE FROM embeddings")
            con.execute("DELETE FROM claims")

    def info(self) -> CacheStats:
        entries, nbytes, max_writes = self._run(self._info)
        return CacheStats(
            hits=self.stats.hits,
            misses=self.stats.misses,
            entries=int(entries),
            nbytes=int(nbytes),
            rejected=self.stats.rejected,
            extra={
                "path": str(self.path),
                "max_writes_per_entry": int(max_writes),
                "readonly": self.readonly,
            },
        )

    def _info(self, con):
        if con is None:
            return 0, 0, 0
        return con.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(data)), 0), COALESCE(MAX(n_writes), 0) "
            "FROM embeddings"
        ).fetchone()


def _set_wal(con: sqlite3.Connection, timeout: float = 60.0) -> None:
    """Put the database in WAL mode, waiting while other connections hold it.

    Changing the journal mode needs the database to itself, and SQLite answers
    "database is locked" at once (its busy timeout does not apply) while
    another process or thread -- a Dask worker opening the same store -- is
    reading or writing. The mode is read first (WAL is persistent: usually it
    is already set), and the change is retried until ``timeout``.
    """
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        try:
            mode = con.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                con.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


class _transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any error."""

    def __init__(self, con: sqlite3.Connection):
        self.con = con

    def __enter__(self):
        self.con.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.con.execute("COMMIT")
        elif self.con.in_transaction:
            self.con.execute("ROLLBACK")
        return False


class _file_lock:
    """An exclusive lock between processes on ``<path>.lock`` (POSIX; a no-op elsewhere)."""

    def __init__(self, path: Path):
        self.path = path.with_name(path.name + ".lock")
        self.fh = None

    def __enter__(self):
        try:
            import fcntl

            self.fh = open(self.path, "a")  # noqa: SIM115 - closed in __exit__
            fcntl.flock(self.fh, fcntl.LOCK_EX)
        except (ImportError, OSError):  # Windows, read-only directory: no lock
            if self.fh is not None:
                self.fh.close()
            self.fh = None

    def __exit__(self, *exc):
        if self.fh is not None:
            self.fh.close()  # closing releases the lock
        return False


def _is_damaged(path: Path) -> bool:
    """Whether SQLite's quick check rejects the database at ``path`` (opened afresh)."""
    if not path.exists():
        return False
    try:
        con = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=60.0)
        try:
            result = con.execute("PRAGMA quick_check").fetchall()
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        return _sqlite_code(exc) in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    return result != [("ok",)]


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


# --------------------------------------------------------------- registry
_memory_store = MemoryStore()
_disk_stores: dict[Path, SQLiteStore] = {}
_registry_lock = threading.Lock()


def open_store(cache) -> MemoryStore | SQLiteStore | None:
    """The store an encoder's ``cache`` parameter names (shared per process).

    Raises :class:`~sktransfer.exceptions.CacheError` when the directory holds a
    database that is not an sktransfer cache.
    """
    if cache is None:
        return None
    if isinstance(cache, str) and cache == "memory":
        return _memory_store
    path = Path(cache).expanduser().resolve()
    with _registry_lock:
        store = _disk_stores.get(path)
        if store is None:
            store = SQLiteStore(path)
            _disk_stores[path] = store
        return store
