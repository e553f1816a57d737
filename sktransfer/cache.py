"""The embedding cache: every distinct sample is encoded once.

An encoder's ``cache`` parameter names a store:

``"memory"`` (default)
    One in-process store shared by every encoder and all their clones, bounded
    in size; least recently used entries go first (see :func:`set_memory_limit`).
a directory path
    An SQLite database in that directory, shared by every process that points
    at it (``GridSearchCV(n_jobs=...)``, reruns of a script). Writes are
    transactions, every vector carries a checksum, and a vector whose checksum,
    width or dtype is wrong is recomputed, never served. Processes that work on
    the same samples at the same time *claim* them first, so each sample is
    encoded by one process while the others wait for its result.
``None``
    No cache.

A cache key is the hash of (model fingerprint, sample content), where the
model fingerprint covers a hash of the weight files that were loaded (for a
Hub or Hugging Face cache model: those of the resolved snapshot) and every
parameter that changes the output (see ``sktransfer._fingerprint``).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Model fingerprints live in their own module; re-exported for existing callers.
from sktransfer._fingerprint import (  # noqa: F401
    fingerprint,
    model_identity,
    path_stamp,
    weights_digest,
)

__all__ = [
    "CacheStats",
    "cache_info",
    "clear_cache",
    "set_memory_limit",
    "open_store",
]

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


def _checksum(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


class MemoryStore:
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

    def wait_for(self, keys, dim, timeout):  # pragma: no cover - never claimed elsewhere
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


class SQLiteStore:
    """Embeddings in an SQLite database shared by processes.

    Table ``embeddings(key, dim, dtype, crc, data, n_writes)``; a vector is
    written in one transaction, so a crash leaves either the whole row or none.
    ``claims(key, pid, since)`` lets concurrent processes split the work.
    """

    # A claim older than this is assumed abandoned (its process died or hung).
    CLAIM_TTL = 600.0

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory).expanduser().resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / DB_NAME
        self.stats = CacheStats()
        self._local = threading.local()
        with self._connect() as con:
            con.execute(
                "CREATE TABLE IF NOT EXISTS embeddings (key BLOB PRIMARY KEY, dim INTEGER, "
                "dtype TEXT, crc INTEGER, data BLOB, n_writes INTEGER DEFAULT 1)"
            )
            con.execute(
                "CREATE TABLE IF NOT EXISTS claims (key BLOB PRIMARY KEY, pid INTEGER, since REAL)"
            )

    def _connect(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None or getattr(self._local, "pid", None) != os.getpid():
            con = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            self._local.con = con
            self._local.pid = os.getpid()
        return con

    def __getstate__(self):  # connections do not cross processes
        return {"directory": self.directory}

    def __setstate__(self, state):
        self.__init__(state["directory"])

    def get_many(self, keys: list[bytes], dim: int) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        con = self._connect()
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
                    or _checksum(data) != crc
                ):
                    bad.append(key)
                    continue
                found[bytes(key)] = np.frombuffer(data, dtype=np.float32)
        if bad:
            self.stats.rejected += len(bad)
            with con:
                con.executemany("DELETE FROM embeddings WHERE key = ?", [(k,) for k in bad])
        return found

    def put_many(self, items: dict[bytes, np.ndarray]) -> None:
        rows = []
        for key, vector in items.items():
            data = np.ascontiguousarray(vector, dtype=np.float32).tobytes()
            rows.append((key, len(data) // 4, "float32", _checksum(data), data))
        con = self._connect()
        con.execute("BEGIN IMMEDIATE")
        try:
            con.executemany(
                "INSERT INTO embeddings (key, dim, dtype, crc, data) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET dim=excluded.dim, dtype=excluded.dtype, "
                "crc=excluded.crc, data=excluded.data, n_writes=n_writes + 1",
                rows,
            )
            con.executemany("DELETE FROM claims WHERE key = ?", [(r[0],) for r in rows])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def claim(self, keys: list[bytes]) -> list[bytes]:
        """Claim ``keys`` for this process; return those that are now ours."""
        con = self._connect()
        pid = os.getpid()
        now = time.time()
        con.execute("BEGIN IMMEDIATE")
        try:
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
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return [k for k in keys if k in mine]

    def release(self, keys: list[bytes]) -> None:
        """Drop this process's claims on ``keys`` (after an error)."""
        if not keys:
            return
        con = self._connect()
        with con:
            con.executemany(
                "DELETE FROM claims WHERE key = ? AND pid = ?", [(k, os.getpid()) for k in keys]
            )

    def wait_for(self, keys: list[bytes], dim: int, timeout: float) -> dict[bytes, np.ndarray]:
        """Wait until other processes store ``keys``; return what arrived in time."""
        pending = list(keys)
        found: dict[bytes, np.ndarray] = {}
        deadline = time.monotonic() + timeout
        delay = 0.01
        while pending:
            found.update(self.get_many(pending, dim))
            pending = [k for k in pending if k not in found]
            if not pending or time.monotonic() > deadline:
                break
            # Claims that vanished without a result (owner died, error) are ours to do.
            con = self._connect()
            claimed = set()
            for chunk, marks in _in_chunks(pending):
                claimed.update(
                    bytes(k)
                    for (k, owner) in con.execute(
                        f"SELECT key, pid FROM claims WHERE key IN ({marks})", chunk
                    )
                    if _pid_alive(owner)
                )
            if not claimed:
                break
            pending = [k for k in pending if k in claimed]
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        return found

    def clear(self) -> None:
        con = self._connect()
        with con:
            con.execute("DELETE FROM embeddings")
            con.execute("DELETE FROM claims")
        self.stats = CacheStats()

    def info(self) -> CacheStats:
        con = self._connect()
        entries, nbytes = con.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(data)), 0) FROM embeddings"
        ).fetchone()
        max_writes = con.execute("SELECT COALESCE(MAX(n_writes), 0) FROM embeddings").fetchone()
        return CacheStats(
            hits=self.stats.hits,
            misses=self.stats.misses,
            entries=int(entries),
            nbytes=int(nbytes),
            rejected=self.stats.rejected,
            extra={"path": str(self.path), "max_writes_per_entry": int(max_writes[0])},
        )


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
    """The store an encoder's ``cache`` parameter names (shared per process)."""
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


def set_memory_limit(megabytes: float) -> None:
    """Bound the in-memory cache to ``megabytes`` (least recently used go first).

    Parameters
    ----------
    megabytes : float
        The new limit; 0 keeps nothing. The default is 1024.

    Examples
    --------
    >>> from sktransfer.cache import set_memory_limit
    >>> set_memory_limit(256)
    >>> set_memory_limit(1024)
    """
    if megabytes < 0:
        raise ValueError(f"megabytes must be >= 0, got {megabytes}")
    _memory_store.limit_bytes = int(megabytes * 2**20)
    _memory_store.put_many({})  # evict down to the new limit


def cache_info(cache="memory") -> CacheStats:
    """Hits, misses and size of a store.

    Parameters
    ----------
    cache : "memory" or path, default="memory"
        The same value as an encoder's ``cache`` parameter.

    Returns
    -------
    CacheStats

    Examples
    --------
    >>> from sktransfer.cache import cache_info
    >>> info = cache_info()
    >>> info.hits >= 0 and info.misses >= 0
    True
    """
    store = open_store(cache)
    if store is None:
        raise ValueError("cache=None has no store to describe.")
    return store.info()


def clear_cache(cache="memory") -> None:
    """Delete every vector in a store and reset its counts.

    Parameters
    ----------
    cache : "memory" or path, default="memory"

    Examples
    --------
    >>> from sktransfer.cache import clear_cache
    >>> clear_cache()
    """
    store = open_store(cache)
    if store is not None:
        store.clear()


def sample_key(prefix: bytes, content: bytes) -> bytes:
    """The cache key of one sample under one model fingerprint."""
    return hashlib.blake2b(content, digest_size=20, key=prefix[:64]).digest()
