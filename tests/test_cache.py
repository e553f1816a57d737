"""The embedding cache: each distinct sample is encoded once; only correct vectors are served."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from sktransfer import ImageEncoder, TextEncoder, _precision
from sktransfer.cache import DB_NAME, cache_info, clear_cache, set_memory_limit
from sktransfer.exceptions import PrecisionWarning
from tests.conftest import image_samples, text_samples


class EncodeCounter:
    """Counts the samples that reach an encoder's forward pass."""

    def __init__(self, monkeypatch, cls):
        self.samples: list = []
        original = cls._encode

        def counting(encoder, items, failed, labels=None):
            self.samples.extend(items)
            return original(encoder, items, failed, labels=labels)

        monkeypatch.setattr(cls, "_encode", counting)


def grid_search(encoder, X, y, n_jobs=None, n_candidates=6):
    pipe = Pipeline([("enc", encoder), ("clf", LogisticRegression(max_iter=300))])
    grid = {"clf__C": [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0][:n_candidates]}
    return GridSearchCV(pipe, grid, cv=5, n_jobs=n_jobs).fit(X, y)


def test_grid_search_encodes_each_distinct_sample_once(tiny_text_model, monkeypatch):
    X, y = text_samples(40)
    counter = EncodeCounter(monkeypatch, TextEncoder)
    grid_search(TextEncoder(tiny_text_model, progress=False), X, y)
    # 5 folds x 6 candidates + the refit = 31 fits and 61 transforms, yet
    # every distinct text reached the model exactly once.
    assert sorted(counter.samples) == sorted(set(X))
    info = cache_info()
    assert info.misses == len(set(X))
    # 30 fold fits look up 32 train + 8 test texts each, the refit all 40.
    assert info.hits + info.misses == 30 * 40 + 40
    assert info.entries == len(set(X))


def test_without_cache_every_fold_encodes_again(tiny_text_model, monkeypatch):
    X, y = text_samples(40)
    counter = EncodeCounter(monkeypatch, TextEncoder)
    encoder = TextEncoder(tiny_text_model, progress=False, cache=None)
    grid_search(encoder, X, y, n_candidates=2)
    assert len(counter.samples) == 10 * 40 + 40
    assert cache_info().misses == 0


@pytest.mark.skipif(sys.platform == "win32", reason="loky workers + SQLite file locking")
def test_parallel_grid_search_with_disk_cache_encodes_once(tiny_text_model, tmp_path):
    X, y = text_samples(40)
    store = tmp_path / "cache"
    encoder = TextEncoder(tiny_text_model, progress=False, cache=store)
    search = grid_search(encoder, X, y, n_jobs=2, n_candidates=3)
    assert search.best_score_ > 0.5
    with sqlite3.connect(store / DB_NAME) as con:
        entries, max_writes = con.execute(
            "SELECT COUNT(*), MAX(n_writes) FROM embeddings"
        ).fetchone()
        claims = con.execute("SELECT COUNT(*) FROM claims").fetchone()[0]
    # Each distinct text was encoded (and written) by exactly one process.
    assert entries == len(set(X))
    assert max_writes == 1
    assert claims == 0


def test_cached_and_uncached_features_are_identical(tiny_text_model):
    X, _ = text_samples(30)
    plain = TextEncoder(tiny_text_model, cache=None, progress=False).fit().transform(X)
    cached = TextEncoder(tiny_text_model, progress=False).fit()
    cold = cached.transform(X)
    warm = cached.transform(X)
    np.testing.assert_array_equal(cold, plain)
    np.testing.assert_array_equal(warm, plain)
    assert cache_info().hits == len(set(X))


@pytest.mark.parametrize("cache", ["memory", "disk"])
def test_changing_the_output_does_not_change_the_cache(tiny_text_model, tmp_path, cache):
    # All new and distinct (the encoded array is returned as is), then a mix of
    # known, new and repeated texts: rows stay aligned and the stored vectors intact.
    X = [f"sentence number {i}" for i in range(12)]
    cache = tmp_path if cache == "disk" else cache
    plain = TextEncoder(tiny_text_model, cache=None, progress=False).fit()
    encoder = TextEncoder(tiny_text_model, cache=cache, progress=False).fit()
    cold = encoder.transform(X)
    np.testing.assert_array_equal(cold, plain.transform(X))
    cold[:] = 0.0
    mixed = ["new one", X[3], "new one", X[0], "another"]
    np.testing.assert_array_equal(encoder.transform(mixed), plain.transform(mixed))
    np.testing.assert_array_equal(encoder.transform(X), plain.transform(X))


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("max_length", 6),
        ("normalize", True),
        ("revision", "v2"),
        ("precision", "bfloat16"),
        ("long_texts", "chunk"),
    ],
)
def test_output_affecting_parameters_miss(tiny_text_model, param, value, monkeypatch):
    X, _ = text_samples(12)
    base = TextEncoder(tiny_text_model, progress=False).fit()
    base.transform(X)
    if param == "revision":  # a local folder has no revisions: check the key only
        other = clone(base).set_params(revision=value)
        other.model_source_, other.model_reference_ = base.model_source_, base.model_reference_
        other.n_features_out_ = other.embedding_dim_ = base.embedding_dim_
        other.precision_ = base.precision_
        assert other._fingerprint() != base.model_fingerprint_
        return
    if param == "precision":  # pretend bfloat16 pays on this CPU (the numerics are real)
        monkeypatch.setattr(_precision, "cpu_bfloat16_speedup", lambda: 2.5)
    counter = EncodeCounter(monkeypatch, TextEncoder)
    changed = clone(base).set_params(**{param: value}).fit()
    assert changed.model_fingerprint_ != base.model_fingerprint_
    changed.transform(X)
    assert sorted(counter.samples) == sorted(set(X))


def test_precision_fallback_hits_the_float32_entries(tiny_text_model, monkeypatch):
    """A bfloat16 request that falls back to float32 computes float32 vectors."""
    X, _ = text_samples(12)
    base = TextEncoder(tiny_text_model, progress=False).fit()
    base.transform(X)
    monkeypatch.setattr(_precision, "cpu_bfloat16_speedup", lambda: 0.5)
    counter = EncodeCounter(monkeypatch, TextEncoder)
    with pytest.warns(PrecisionWarning):
        other = clone(base).set_params(precision="bfloat16").fit()
    assert other.precision_ == "float32"
    assert other.model_fingerprint_ == base.model_fingerprint_
    other.transform(X)
    assert counter.samples == []


@pytest.mark.parametrize(
    ("param", "value"), [("batch_size", 3), ("progress", True), ("on_missing", "empty")]
)
def test_runtime_parameters_hit(tiny_text_model, param, value, monkeypatch):
    X, _ = text_samples(12)
    base = TextEncoder(tiny_text_model, progress=False).fit()
    base.transform(X)
    counter = EncodeCounter(monkeypatch, TextEncoder)
    other = clone(base).set_params(**{param: value}).fit()
    assert other.model_fingerprint_ == base.model_fingerprint_
    other.transform(X)
    assert counter.samples == []


def test_another_model_misses(tiny_text_model, tmp_path, monkeypatch):
    from tests.conftest import build_tiny_sentence_transformer

    X, _ = text_samples(8)
    TextEncoder(tiny_text_model, progress=False).fit().transform(X)
    # Same architecture, different weights: the content hash tells them apart.
    other_dir = build_tiny_sentence_transformer(tmp_path)
    import torch
    from safetensors.torch import load_file, save_file

    weights = Path(other_dir) / "model.safetensors"
    state = load_file(str(weights))
    name = next(k for k in state if k.endswith("word_embeddings.weight"))
    state[name] = state[name] + 0.5 * torch.ones_like(state[name])
    save_file(state, str(weights))
    counter = EncodeCounter(monkeypatch, TextEncoder)
    TextEncoder(other_dir, progress=False).fit().transform(X)
    assert sorted(counter.samples) == sorted(set(X))


def test_clones_share_the_memory_cache_and_the_network(tiny_text_model, monkeypatch):
    X, _ = text_samples(10)
    first = TextEncoder(tiny_text_model, progress=False).fit()
    first.transform(X)
    counter = EncodeCounter(monkeypatch, TextEncoder)
    second = clone(first).fit()
    assert second.model_ is first.model_  # loaded once per process
    np.testing.assert_array_equal(second.transform(X), first.transform(X))
    assert counter.samples == []


def test_memory_cache_is_bounded(tiny_text_model):
    X, _ = text_samples(40)
    enc = TextEncoder(tiny_text_model, progress=False).fit()
    row_bytes = enc.n_features_out_ * 4
    try:
        set_memory_limit(10 * row_bytes / 2**20)
        enc.transform(X)
        info = cache_info()
        assert info.entries == 10
        assert info.nbytes <= 10 * row_bytes
        # The most recently used are kept: the last ten distinct texts hit.
        before = info.hits
        enc.transform(list(dict.fromkeys(X))[-10:])
        assert cache_info().hits - before == 10
    finally:
        set_memory_limit(1024)


def test_clear_cache_and_stats(tiny_text_model):
    X, _ = text_samples(6)
    enc = TextEncoder(tiny_text_model, progress=False).fit()
    enc.transform(X)
    enc.transform(X)
    info = enc.cache_info()
    assert (info.hits, info.misses, info.entries) == (6, 6, 6)
    assert info.hit_rate == 0.5
    clear_cache()
    assert cache_info().entries == 0 and cache_info().hits == 0


def _corrupt(store_dir: Path, sql: str) -> None:
    with sqlite3.connect(store_dir / DB_NAME) as con:
        con.execute(sql)


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE embeddings SET data = substr(data, 1, 10)",  # truncated write
        "UPDATE embeddings SET crc = crc + 1",  # bytes do not match their checksum
        "UPDATE embeddings SET dim = dim + 1",  # wrong width
        "UPDATE embeddings SET dtype = 'float64'",  # wrong dtype
    ],
)
def test_corrupt_disk_entries_are_recomputed_not_served(tiny_text_model, tmp_path, damage):
    X, _ = text_samples(8)
    store = tmp_path / "store"
    enc = TextEncoder(tiny_text_model, progress=False, cache=store).fit()
    expected = enc.transform(X)
    _corrupt(store, damage)
    again = enc.transform(X)
    np.testing.assert_array_equal(again, expected)
    info = enc.cache_info()
    assert info.rejected == len(set(X))
    assert info.entries == len(set(X))  # rewritten
    assert enc.transform(X).tolist() == expected.tolist()


def test_disk_cache_survives_a_new_process_and_pickling(tiny_text_model, tmp_path):
    X, _ = text_samples(8)
    store = tmp_path / "store"
    enc = TextEncoder(tiny_text_model, progress=False, cache=str(store)).fit()
    expected = enc.transform(X)
    restored = pickle.loads(pickle.dumps(enc))
    assert restored.get_params()["cache"] == str(store)
    code = (
        "import pickle, sys, numpy as np\n"
        "enc = pickle.load(open(sys.argv[1], 'rb'))\n"
        "import sktransfer.text as t\n"
        "t.TextEncoder._encode = lambda *a, **k: (_ for _ in ()).throw(AssertionError('encoded'))\n"
        "np.save(sys.argv[2], enc.transform(pickle.load(open(sys.argv[3], 'rb'))))\n"
    )
    (tmp_path / "enc.pkl").write_bytes(pickle.dumps(enc))
    (tmp_path / "X.pkl").write_bytes(pickle.dumps(X))
    import subprocess

    subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            str(tmp_path / "enc.pkl"),
            str(tmp_path / "out.npy"),
            str(tmp_path / "X.pkl"),
        ],
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected)


def _encode_in_process(model_dir, store, texts, out_path):
    from sktransfer import TextEncoder

    enc = TextEncoder(model_dir, progress=False, cache=store).fit()
    np.save(out_path, enc.transform(texts))


def test_two_processes_writing_at_once_lose_nothing(tiny_text_model, tmp_path):
    X, _ = text_samples(60)
    X = list(dict.fromkeys(X))
    store = str(tmp_path / "shared")
    context = multiprocessing.get_context("spawn")
    halves = [X[: 2 * len(X) // 3], X[len(X) // 3 :]]  # overlapping thirds
    procs = [
        context.Process(
            target=_encode_in_process,
            args=(tiny_text_model, store, part, str(tmp_path / f"out{i}.npy")),
        )
        for i, part in enumerate(halves)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
        assert p.exitcode == 0
    reference = TextEncoder(tiny_text_model, progress=False, cache=None).fit()
    for i, part in enumerate(halves):
        np.testing.assert_allclose(
            np.load(tmp_path / f"out{i}.npy"), reference.transform(part), rtol=1e-5, atol=1e-6
        )
    with sqlite3.connect(Path(store) / DB_NAME) as con:
        entries, max_writes = con.execute(
            "SELECT COUNT(*), MAX(n_writes) FROM embeddings"
        ).fetchone()
    assert entries == len(X)
    assert max_writes == 1


def test_a_dead_process_claim_does_not_block(tiny_text_model, tmp_path):
    X, _ = text_samples(6)
    store = tmp_path / "store"
    enc = TextEncoder(tiny_text_model, progress=False, cache=store).fit()
    assert enc.cache_info().entries == 0  # opens (creates) the store
    prefix = bytes.fromhex(enc.model_fingerprint_)
    keys = [enc._cache_key(prefix, x) for x in X]
    dead = multiprocessing.get_context("spawn").Process(target=int)
    dead.start()
    dead.join()
    with sqlite3.connect(store / DB_NAME) as con:
        con.executemany(
            "INSERT INTO claims (key, pid, since) VALUES (?, ?, 0)", [(k, dead.pid) for k in keys]
        )
    out = enc.transform(X)
    np.testing.assert_allclose(
        out, TextEncoder(tiny_text_model, cache=None).fit().transform(X), rtol=1e-5, atol=1e-6
    )


# -------------------------------------------------------------------- images
@pytest.fixture
def image_encoder(tiny_image_weights):
    return ImageEncoder(
        "test_efficientnet", weights=tiny_image_weights, image_size=32, progress=False
    ).fit()


def test_image_file_changed_on_disk_misses(image_encoder, tmp_path, monkeypatch):
    images, _ = image_samples(3)
    path = tmp_path / "a.png"
    Image.fromarray(images[0]).save(path)
    first = image_encoder.transform([path])
    counter = EncodeCounter(monkeypatch, ImageEncoder)
    np.testing.assert_array_equal(image_encoder.transform([str(path)]), first)
    assert counter.samples == []
    Image.fromarray(images[1]).save(path)  # same path, new content
    changed = image_encoder.transform([path])
    assert len(counter.samples) == 1
    assert not np.allclose(changed, first)


def test_image_arrays_are_keyed_by_content(image_encoder, monkeypatch):
    images, _ = image_samples(4)
    image_encoder.transform(images)
    counter = EncodeCounter(monkeypatch, ImageEncoder)
    image_encoder.transform([img.copy() for img in images])  # equal content, new objects
    assert counter.samples == []
    image_encoder.transform([Image.fromarray(img) for img in images])  # decoded content
    assert len(counter.samples) <= len(images)


def test_image_size_changes_the_key(image_encoder):
    other = clone(image_encoder).set_params(image_size=48).fit()
    assert other.model_fingerprint_ != image_encoder.model_fingerprint_


def test_unreadable_images_are_never_cached(image_encoder, tmp_path):
    images, _ = image_samples(2)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"garbage")
    image_encoder.set_params(on_error="zero")
    with pytest.warns(UserWarning, match=r"positions \[1\]"):
        image_encoder.transform([images[0], bad, images[1]])
    assert cache_info().entries == 2
    Image.fromarray(images[1]).save(bad.with_suffix(".png"))
    out = image_encoder.transform([bad])  # now readable: encoded, not a cached zero row
    assert np.abs(out).sum() > 0
