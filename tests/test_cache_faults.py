"""The disk cache under faults: tampered rows, stopped processes, damaged, foreign and
read-only files. Whatever happens, the vectors returned are the model's own."""

from __future__ import annotations

import gc
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from sktransfer import TextEncoder, _stores
from sktransfer import cache as cache_module
from sktransfer.cache import DB_NAME, SQLiteStore, set_memory_limit
from sktransfer.exceptions import CacheError, CacheWarning
from tests.conftest import text_samples

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _fresh_disk_stores(monkeypatch):
    """Each test opens its disk stores afresh (the registry keeps one per path)."""
    monkeypatch.setattr(_stores, "_disk_stores", {})
    yield
    gc.collect()  # close the connections of the stores just dropped


def distinct_texts(n):
    return list(dict.fromkeys(text_samples(3 * n)[0]))[:n]


def reference(model, X):
    return TextEncoder(model, progress=False, cache=None).fit().transform(X)


def rows(store_dir, sql="SELECT key, data, crc FROM embeddings ORDER BY key"):
    con = sqlite3.connect(Path(store_dir) / DB_NAME)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


# ------------------------------------------------------------ tampered rows
def test_rows_swapped_between_keys_are_not_served(tiny_text_model, tmp_path):
    X = distinct_texts(2)
    store = tmp_path / "store"
    enc = TextEncoder(tiny_text_model, progress=False, cache=store).fit()
    enc.transform(X)
    (key_a, data_a, crc_a), (key_b, data_b, crc_b) = rows(store)
    with sqlite3.connect(store / DB_NAME) as con:  # each row gets the other's data and crc
        con.execute("UPDATE embeddings SET data = ?, crc = ? WHERE key = ?", (data_b, crc_b, key_a))
        con.execute("UPDATE embeddings SET data = ?, crc = ? WHERE key = ?", (data_a, crc_a, key_b))
    np.testing.assert_allclose(enc.transform(X), reference(tiny_text_model, X), atol=1e-6)
    assert enc.cache_info().rejected == 2


def test_rows_with_the_old_checksum_are_recomputed(tiny_text_model, tmp_path):
    """A database written before the checksum covered the key: nothing from it is served."""
    X = distinct_texts(4)
    store = tmp_path / "store"
    enc = TextEncoder(tiny_text_model, progress=False, cache=store).fit()
    enc.transform(X)
    with sqlite3.connect(store / DB_NAME) as con:
        for key, data, _ in rows(store):
            con.execute(
                "UPDATE embeddings SET crc = ? WHERE key = ?", (zlib.crc32(data) & 0xFFFFFFFF, key)
            )
    np.testing.assert_allclose(enc.transform(X), reference(tiny_text_model, X), atol=1e-6)
    info = enc.cache_info()
    assert info.rejected == len(X)
    assert info.entries == len(X)  # rewritten with the new checksum
    enc.transform(X)
    assert enc.cache_info().rejected == len(X)


# --------------------------------------------------------- a stopped owner
OWNER = """
import os, signal, sys
from sktransfer.cache import open_store
store = open_store(sys.argv[1])
assert len(store.claim([bytes.fromhex(h) for h in sys.argv[2:]])) == len(sys.argv) - 2
print("claimed", flush=True)
os.kill(os.getpid(), signal.SIGSTOP)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs POSIX signals")
def test_a_stopped_process_claim_does_not_hang(tiny_text_model, tmp_path, monkeypatch):
    X = distinct_texts(6)
    store = tmp_path / "store"
    enc = TextEncoder(tiny_text_model, progress=False, cache=store).fit()
    prefix = bytes.fromhex(enc.model_fingerprint_)
    claimed = [enc._cache_key(prefix, x).hex() for x in X[:4]]
    monkeypatch.setattr(SQLiteStore, "CLAIM_STALL_SECONDS", 1.0, raising=False)
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(store), *claimed],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    result: dict = {}

    def transform():
        start = time.monotonic()
        result["out"] = enc.transform(X)
        result["seconds"] = time.monotonic() - start

    worker = threading.Thread(target=transform, daemon=True)
    try:
        assert owner.stdout.readline() == b"claimed\n"
        while Path(f"/proc/{owner.pid}/stat").exists():  # until it is stopped (Linux)
            if Path(f"/proc/{owner.pid}/stat").read_text().split(") ")[1][0] == "T":
                break
            time.sleep(0.05)
        worker.start()
        worker.join(timeout=30)
        assert not worker.is_alive(), "transform still waits for a stopped process"
    finally:
        owner.kill()  # a stopped process dies on SIGKILL too
        owner.wait(timeout=30)
        worker.join(timeout=60) if worker.is_alive() else None
    assert result["seconds"] < 15
    np.testing.assert_allclose(result["out"], reference(tiny_text_model, X), atol=1e-6)


# --------------------------------------------------- damaged, foreign files
def _a_real_store(model, directory):
    """A store with a few vectors, written and closed; returns the file's bytes."""
    TextEncoder(model, progress=False, cache=directory).fit().transform(distinct_texts(30))
    _stores._disk_stores.clear()
    gc.collect()
    return (directory / DB_NAME).read_bytes()


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_file_is_moved_aside_and_a_new_one_started(tiny_text_model, tmp_path, damage):
    store = tmp_path / "store"
    store.mkdir()
    if damage == "garbage":
        content = b"these bytes are not an SQLite database\n" * 50
    else:
        content = _a_real_store(tiny_text_model, store)[:1000]
    (store / DB_NAME).write_bytes(content)
    X = distinct_texts(5)
    enc = TextEncoder(tiny_text_model, progress=False, cache=store).fit()
    with pytest.warns(CacheWarning, match=rf"{DB_NAME} was damaged .* moved to .*corrupt-"):
        out = enc.transform(X)
    np.testing.assert_allclose(out, reference(tiny_text_model, X), atol=1e-6)
    (aside,) = store.glob(f"{DB_NAME}.corrupt-*[0-9]")
    assert aside.read_bytes() == content  # kept, never served
    assert enc.cache_info().entries == len(X)


@pytest.mark.parametrize(
    "schema",
    [
        "CREATE TABLE users (name TEXT, email TEXT)",
        "CREATE TABLE embeddings (key TEXT PRIMARY KEY, vector BLOB)",
    ],
)
def test_a_foreign_database_is_left_untouched_with_a_clear_error(tiny_text_model, tmp_path, schema):
    store = tmp_path / "store"
    store.mkdir()
    with sqlite3.connect(store / DB_NAME) as con:
        con.execute(schema)
    content = (store / DB_NAME).read_bytes()
    enc = TextEncoder(tiny_text_model, progress=False, cache=store).fit()
    with pytest.raises(CacheError, match=rf"{DB_NAME} is an SQLite database but not an sktr"):
        enc.transform(["a movie"])
    assert (store / DB_NAME).read_bytes() == content
    assert sorted(p.name for p in store.iterdir()) == [DB_NAME]


# -------------------------------------------------------------- read-only
def test_a_read_only_store_serves_what_it_has(tiny_text_model, tmp_path, monkeypatch):
    store = tmp_path / "store"
    X = distinct_texts(8)
    TextEncoder(tiny_text_model, progress=False, cache=store).fit().transform(X[:4])
    _stores._disk_stores.clear()
    gc.collect()
    before = rows(store)
    real_access = os.access

    def access(path, mode, *args, **kwargs):  # what a non-root user of a 0o555 directory sees
        if mode & os.W_OK and Path(path).resolve().is_relative_to(store.resolve()):
            return False
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)
    enc = TextEncoder(tiny_text_model, progress=False, cache=store).fit()
    with pytest.warns(CacheWarning, match=rf"{DB_NAME} is read-only") as caught:
        out = enc.transform(X)
        enc.transform(X)
    assert len([w for w in caught if w.category is CacheWarning]) == 1
    np.testing.assert_allclose(out, reference(tiny_text_model, X), atol=1e-6)
    info = enc.cache_info()
    assert (info.hits, info.misses, info.entries) == (4 + 4, 4 + 4, 4)
    assert rows(store) == before
    with pytest.raises(CacheError, match="read-only and cannot be cleared"):
        cache_module.clear_cache(store)


def test_a_store_that_refuses_writes_turns_read_only(tiny_text_model, tmp_path, monkeypatch):
    """The directory looks writable but SQLite cannot write (e.g. the file system says no)."""
    store = tmp_path / "store"
    X = distinct_texts(8)
    TextEncoder(tiny_text_model, progress=False, cache=store).fit().transform(X[:4])
    _stores._disk_stores.clear()
    gc.collect()
    before = rows(store)
    connect = sqlite3.connect

    def read_only_connect(database, *args, **kwargs):
        if Path(database) == store.resolve() / DB_NAME:
            database, kwargs["uri"] = f"{Path(database).as_uri()}?mode=ro", True
        return connect(database, *args, **kwargs)

    monkeypatch.setattr(_stores.sqlite3, "connect", read_only_connect)
    enc = TextEncoder(tiny_text_model, progress=False, cache=store).fit()
    with pytest.warns(CacheWarning, match="is read-only: writing failed"):
        out = enc.transform(X)
    np.testing.assert_allclose(out, reference(tiny_text_model, X), atol=1e-6)
    assert rows(store) == before


def _chattr(flag, *paths):
    return subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True).returncode == 0


def test_an_immutable_directory_is_read_not_written(tiny_text_model, tmp_path):
    """A real read-only directory and file (``chattr +i`` holds even for root)."""
    store = tmp_path / "store"
    X = distinct_texts(8)
    TextEncoder(tiny_text_model, progress=False, cache=store).fit().transform(X[:4])
    _stores._disk_stores.clear()
    gc.collect()
    assert sorted(p.name for p in store.iterdir()) == [DB_NAME]  # WAL checkpointed and gone
    if not _chattr("+i", store / DB_NAME, store):
        pytest.skip("chattr +i is not available here")
    try:
        enc = TextEncoder(tiny_text_model, progress=False, cache=store).fit()
        with pytest.warns(CacheWarning, match="is read-only"):
            out = enc.transform(X)
        info = enc.cache_info()
    finally:
        _chattr("-i", store, store / DB_NAME)
    np.testing.assert_allclose(out, reference(tiny_text_model, X), atol=1e-6)
    assert (info.hits, info.misses, info.entries) == (4, 4, 4)


# ------------------------------------------------------------ memory limit
@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (float("nan"), ValueError, "finite number >= 0, got nan"),
        (float("inf"), ValueError, "finite number >= 0, got inf"),
        (-1, ValueError, "finite number >= 0, got -1"),
        ("10", TypeError, "must be a number, got '10' \\(str\\)"),
        (True, TypeError, "must be a number, got True \\(bool\\)"),
        (None, TypeError, "must be a number, got None"),
    ],
)
def test_set_memory_limit_rejects_what_is_not_a_size(value, error, match):
    limit = _stores._memory_store.limit_bytes
    with pytest.raises(error, match=match):
        set_memory_limit(value)
    assert _stores._memory_store.limit_bytes == limit


def test_set_memory_limit_accepts_numbers():
    try:
        set_memory_limit(np.float32(2.5))
        assert _stores._memory_store.limit_bytes == int(2.5 * 2**20)
        set_memory_limit(0)
        assert _stores._memory_store.limit_bytes == 0
    finally:
        set_memory_limit(1024)


def test_a_long_computation_stores_its_rows_as_it_goes(tmp_path, monkeypatch):
    """Waiting processes see progress: the owner of a long claim stores in slices.

    Without slices a claim that takes longer than ``CLAIM_STALL_SECONDS`` looks
    stalled to every waiter, which then encodes the same samples a second time.
    """
    monkeypatch.setattr(SQLiteStore, "STORE_EVERY_SECONDS", 0.05, raising=False)
    store = SQLiteStore(tmp_path)
    other = SQLiteStore(tmp_path)  # another connection, as another process would use
    keys = [bytes([i]) * 20 for i in range(200)]
    calls: list[int] = []
    seen_by_other: list[int] = []

    def compute(batch):
        seen_by_other.append(len(other.get_many(keys, 3)))
        calls.append(len(batch))
        time.sleep(0.002 * len(batch))
        first = keys.index(batch[0])
        return np.arange(first, first + len(batch), dtype=np.float32)[:, None].repeat(3, 1), set()

    rows = store.get_or_compute(keys, 3, compute)
    assert sum(calls) == len(keys) and len(calls) > 1, calls
    # Each slice is stored before the next one starts, where other processes see it.
    assert seen_by_other == [sum(calls[:i]) for i in range(len(calls))]
    for i, key in enumerate(keys):
        np.testing.assert_array_equal(rows[key], [i, i, i])
    np.testing.assert_array_equal(other.get_many(keys, 3)[keys[-1]], [199, 199, 199])


def test_a_store_opens_while_another_connection_holds_the_journal_mode_change(tmp_path):
    # SQLite answers "database is locked" at once (no busy timeout) to a journal
    # mode change while other connections use the file: threaded Dask workers
    # opening one store at the same time saw it. The store waits instead.
    import sqlite3

    from sktransfer import _stores

    refusals = {"left": 3}

    class Flaky(sqlite3.Connection):
        def execute(self, sql, *args):
            if sql.startswith("PRAGMA journal_mode") and refusals["left"] > 0:
                refusals["left"] -= 1
                raise sqlite3.OperationalError("database is locked")
            return super().execute(sql, *args)

    con = sqlite3.connect(tmp_path / "x.sqlite", factory=Flaky, isolation_level=None)
    _stores._set_wal(con)
    assert refusals["left"] == 0
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
