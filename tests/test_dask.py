"""Encoders on dask collections, on a local cluster of worker processes (loopback only).

One ``LocalCluster`` (2 worker processes, 2 threads each: the tasks of one worker run at
the same time, as on a default cluster) serves the whole module: starting one costs
seconds. Each test starts from workers with no loaded network and zeroed counters,
installed in the worker processes by ``Client.run``.
"""

from __future__ import annotations

import os
import pickle
import threading
import time

import dask
import dask.array as da
import dask.bag as db
import dask.dataframe as dd
import distributed
import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_validate
from sklearn.pipeline import make_pipeline

from sktransfer import ImageEncoder, TextEncoder
from sktransfer.exceptions import InvalidInputError
from tests.conftest import image_samples, text_samples

# Bounds every wait on the cluster, so a broken cluster fails the test instead of hanging it
# (generous: a loaded 2-core machine takes minutes to import torch in two new processes).
WAIT_S = 600


# Generous timeouts: on a loaded 2-core machine a worker process takes long to start.
PATIENT = {
    "distributed.comm.timeouts.connect": f"{WAIT_S}s",
    "distributed.comm.timeouts.tcp": f"{WAIT_S}s",
    "distributed.scheduler.worker-ttl": f"{2 * WAIT_S}s",
}


@pytest.fixture(scope="module")
def client():
    with (
        dask.config.set(PATIENT),
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=2,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            # torch in each worker gets one of the two cores.
            env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
        ) as cluster,
        distributed.Client(cluster, timeout=WAIT_S) as c,
    ):
        # The slow imports, before any test's clock; as tasks (Client.run would block the
        # workers' event loops, and so their heartbeats, for as long as the imports take).
        for worker in c.scheduler_info(n_workers=-1)["workers"]:
            c.submit(_import_the_encoders, workers=[worker], pure=False).result(timeout=WAIT_S)
        yield c


def _import_the_encoders():
    import sentence_transformers  # noqa: F401

    import sktransfer.text  # noqa: F401


# --- installed in the worker processes by Client.run ------------------------
COUNTS = {"loads": 0, "encodes": 0}
LOAD = {"extra_seconds": 0.0}
GATE = {}


def _install_counters(load_seconds=0.0):
    """Count network loads and encoded batches in this process; start with none loaded.

    ``load_seconds`` makes every load that much slower (a real model takes seconds).
    """
    from sktransfer._base import LOADED_NETWORKS
    from sktransfer.text import TextEncoder as Encoder

    LOADED_NETWORKS.clear()
    COUNTS.update(loads=0, encodes=0)
    LOAD["extra_seconds"] = load_seconds
    if not getattr(Encoder, "_counted", False):
        load, encode = Encoder._load_model, Encoder._encode

        def counted_load(self, device):
            COUNTS["loads"] += 1
            time.sleep(LOAD["extra_seconds"])
            return load(self, device)

        def counted_encode(self, *args, **kwargs):
            COUNTS["encodes"] += 1
            return encode(self, *args, **kwargs)

        Encoder._load_model, Encoder._encode, Encoder._counted = counted_load, counted_encode, True


def _counts():
    return dict(COUNTS)


def _install_gate(n_tasks):
    GATE["barrier"] = threading.Barrier(n_tasks)


def _fit_when_all_tasks_arrived(model):
    """Fit an encoder the moment every task behind the gate is running (a worker's threads)."""
    GATE["barrier"].wait(timeout=120)  # broken (an error, not a hang) if they never meet
    return _encoder(model).n_features_out_


def _die_on(text, marker):
    """Make this worker process exit while it encodes ``text``, once (``marker`` records it)."""
    from sktransfer.text import TextEncoder as Encoder

    encode = Encoder._encode

    def encode_or_die(self, texts, *args, **kwargs):
        if text in texts and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)  # the worker process dies in the middle of the job
        return encode(self, texts, *args, **kwargs)

    Encoder._encode = encode_or_die


@pytest.fixture
def counted(client):
    client.run(_install_counters)
    return lambda: client.run(_counts)


def assert_same_rows(got, expected, **kwargs):
    """Row for row equal, to float rounding: partitions batch the texts (and pad them) differently.

    The texts are distinct, so a row out of place differs by far more than this.
    """
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6, **kwargs)


def _encoder(model, **params):
    return TextEncoder(model, progress=False, cache=None, n_threads=1, **params).fit()


def _texts(n=40):
    texts, _ = text_samples(n)
    return [f"{t} {i}" for i, t in enumerate(texts)]  # distinct, so no row can hide another


# --- the lazy result ------------------------------------------------------------------------
def test_every_dask_collection_gives_the_in_process_rows(client, counted, tiny_text_model):
    enc = _encoder(tiny_text_model)
    texts = _texts()
    expected = enc.transform(texts)
    frame = dd.from_pandas(pd.DataFrame({"text": texts}), npartitions=4)
    collections = {
        "bag": db.from_sequence(texts, npartitions=5),
        "dataframe": frame[["text"]],
        "series": frame["text"],
        "array": da.from_array(np.asarray(texts, dtype=object), chunks=9),
    }
    for kind, collection in collections.items():
        lazy = enc.transform(collection)
        assert isinstance(lazy, da.Array), kind
        assert lazy.dtype == np.float32 and lazy.shape[1] == enc.n_features_out_, kind
        assert lazy.numblocks[0] == collection.npartitions, kind  # one block per partition
        got = client.compute(lazy).result(timeout=WAIT_S)
        assert_same_rows(got, expected, err_msg=kind)

    counts = counted()
    assert sum(c["encodes"] for c in counts.values()) >= 4 * 4  # the cluster did the work
    for worker, c in counts.items():
        # loaded once by the first of its tasks, reused by every later one
        assert c["loads"] == (1 if c["encodes"] else 0), (worker, c)


def test_a_directory_cache_is_filled_by_the_workers(client, counted, tiny_text_model, tmp_path):
    from sktransfer.cache import cache_info

    texts = _texts(20)
    enc = TextEncoder(tiny_text_model, progress=False, cache=str(tmp_path), n_threads=1).fit()
    lazy = enc.transform(db.from_sequence(texts, npartitions=4))
    got = client.compute(lazy).result(timeout=WAIT_S)
    assert sum(c["encodes"] for c in counted().values()) >= 4  # one per partition at least
    assert cache_info(str(tmp_path)).entries == 20  # the workers wrote every vector
    # here, every row now comes from the store the workers filled: nothing is encoded
    assert_same_rows(enc.transform(texts), got)
    assert cache_info(str(tmp_path)).misses == 0


def test_a_dask_array_keeps_its_known_row_counts(tiny_text_model):
    enc = _encoder(tiny_text_model)
    texts = _texts(10)
    lazy = enc.transform(da.from_array(np.asarray(texts, dtype=object), chunks=4))
    assert lazy.chunks == ((4, 4, 2), (enc.n_features_out_,))
    with dask.config.set(scheduler="synchronous"):
        assert_same_rows(lazy.compute(), enc.transform(texts))


def test_the_task_carries_the_model_reference_not_the_weights(tiny_text_model):
    enc = _encoder(tiny_text_model)
    assert len(pickle.dumps(enc)) < 2_000
    lazy = enc.transform(db.from_sequence(_texts(8), npartitions=2))
    assert len(pickle.dumps(dict(lazy.__dask_graph__()))) < 10_000


def test_grid_search_and_cross_validate_under_the_dask_joblib_backend(
    client, counted, tiny_text_model
):
    texts = _texts(36)
    y = np.arange(36) % 2
    pipe = make_pipeline(
        TextEncoder(tiny_text_model, progress=False, n_threads=1),
        LogisticRegression(max_iter=200),
    )
    grid = {"logisticregression__C": [0.1, 1.0, 10.0]}
    local = GridSearchCV(pipe, grid, cv=3).fit(texts, y)
    local_cv = cross_validate(pipe, texts, y, cv=3)
    with joblib.parallel_config(backend="dask"):
        remote = GridSearchCV(pipe, grid, cv=3, n_jobs=-1).fit(texts, y)
        remote_cv = cross_validate(pipe, texts, y, cv=3, n_jobs=-1)
    np.testing.assert_allclose(
        remote.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"]
    )
    np.testing.assert_allclose(remote_cv["test_score"], local_cv["test_score"])
    counts = counted()
    # The fits ran on the workers; each worker's memory cache answers its later fits.
    assert sum(c["encodes"] for c in counts.values()) >= 1
    for worker, c in counts.items():
        assert c["loads"] == (1 if c["encodes"] else 0), (worker, c)


def test_tasks_running_together_on_a_threaded_worker_load_the_model_once(client, tiny_text_model):
    worker = sorted(client.scheduler_info(n_workers=-1)["workers"])[0]
    # A slow load: the second task asks for the model while the first is loading it.
    client.run(_install_counters, 0.5)
    client.run(_install_gate, 2, workers=[worker])
    try:
        fit = _fit_when_all_tasks_arrived
        tasks = [
            client.submit(fit, tiny_text_model, workers=[worker], pure=False) for _ in range(2)
        ]
        assert client.gather(tasks) == [32, 32]
        assert client.run(_counts, workers=[worker])[worker]["loads"] == 1
    finally:
        client.run(_install_counters)  # loads at full speed again


# Last of the cluster tests: the nanny is still restarting the killed worker afterwards.
def test_a_killed_worker_leaves_a_complete_aligned_result(client, tiny_text_model, tmp_path):
    enc = _encoder(tiny_text_model)
    texts = _texts(48)
    expected = enc.transform(texts)
    marker = str(tmp_path / "died")
    client.run(_die_on, texts[30], marker)
    lazy = enc.transform(db.from_sequence(texts, npartitions=8))
    got = client.compute(lazy).result(timeout=WAIT_S)
    assert os.path.exists(marker)  # a worker did die in the middle of the job
    assert_same_rows(got, expected)


# --- in-process (synchronous scheduler): inputs and errors ---------------------------------
def test_images_as_a_dask_array_and_a_bag_of_paths(tiny_image_weights, tmp_path):
    from PIL import Image

    images, _ = image_samples(10, size=32)
    enc = ImageEncoder(
        "test_efficientnet",
        weights=tiny_image_weights,
        image_size=32,
        progress=False,
        cache=None,
        n_threads=1,
    ).fit()
    expected = enc.transform(images)
    stacked = da.from_array(np.stack(images), chunks=(3, 16, 32, 3))  # split inside images too
    paths = []
    for i, image in enumerate(images):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(image).save(paths[-1])
    with dask.config.set(scheduler="synchronous"):
        lazy = enc.transform(stacked)
        assert lazy.chunks == ((3, 3, 3, 1), (enc.n_features_out_,))
        np.testing.assert_allclose(lazy.compute(), expected, rtol=1e-5, atol=1e-6)
        by_path = enc.transform(db.from_sequence(paths, npartitions=3)).compute()
        np.testing.assert_allclose(by_path, expected, rtol=1e-5, atol=1e-6)


def test_a_bad_sample_is_named_with_its_partition(tiny_text_model):
    enc = _encoder(tiny_text_model)
    texts = _texts(12)
    texts[7] = None
    lazy = enc.transform(db.from_sequence(texts, npartitions=3))  # lazy: nothing raised yet
    with dask.config.set(scheduler="synchronous"):
        with pytest.raises(InvalidInputError, match=r"partition 1 of the dask bag.*positions 3\."):
            lazy.compute()


def test_fit_on_a_dask_frame_remembers_its_column_and_computes_nothing(tiny_text_model):
    frame = dd.from_pandas(pd.DataFrame({"review": _texts(8), "other": 1}), npartitions=2)
    enc = TextEncoder(tiny_text_model, progress=False, cache=None).fit(frame[["review"]])
    assert list(enc.feature_names_in_) == ["review"]
    renamed = frame[["review"]].rename(columns={"review": "text"})
    with pytest.raises(InvalidInputError, match=r"fitted on column \['review'\]"):
        enc.transform(renamed)
    with pytest.raises(InvalidInputError, match=r"expects one column but got a dask DataFrame"):
        enc.transform(frame)


def test_other_dask_collections_are_refused_with_what_to_pass(tiny_text_model):
    from dask.delayed import delayed

    enc = _encoder(tiny_text_model)
    with pytest.raises(InvalidInputError, match=r"accept a dask DataFrame.*Bag or Array"):
        enc.transform(delayed(list)(["a"]))


# --- set_output(transform="pandas"): a lazy dask DataFrame ------------------------------------
def _count_encodes(monkeypatch):
    calls = []
    encode = TextEncoder._encode

    def counted(self, *args, **kwargs):
        calls.append(1)
        return encode(self, *args, **kwargs)

    monkeypatch.setattr(TextEncoder, "_encode", counted)
    return calls


def test_pandas_output_of_a_dask_frame_is_a_lazy_dask_frame_on_its_index(
    tiny_text_model, monkeypatch
):
    texts = _texts(12)
    local = pd.DataFrame({"text": texts}, index=pd.RangeIndex(100, 112, name="id"))
    frame = dd.from_pandas(local, npartitions=3)
    enc = TextEncoder(tiny_text_model, progress=False, cache=None, n_threads=1)
    enc.set_output(transform="pandas").fit(frame[["text"]])
    expected = enc.transform(local[["text"]])  # in process: a pandas DataFrame
    encodes = _count_encodes(monkeypatch)

    lazy = enc.transform(frame[["text"]])
    assert isinstance(lazy, dd.DataFrame) and not encodes  # nothing computed here
    assert list(lazy.columns) == [f"text_{i}" for i in range(32)] == list(expected.columns)
    assert (lazy.dtypes == np.float32).all()
    assert lazy.divisions == frame.divisions  # joins back to the input's rows
    with dask.config.set(scheduler="synchronous"):
        got = lazy.compute()
        joined = frame.join(lazy).compute()
    pd.testing.assert_index_equal(got.index, expected.index)
    assert_same_rows(got.to_numpy(), expected.to_numpy())
    assert joined["text"].tolist() == texts
    assert_same_rows(joined[list(expected.columns)].to_numpy(), expected.to_numpy())

    lazy = enc.fit_transform(frame[["text"]])
    assert isinstance(lazy, dd.DataFrame)
    with dask.config.set(scheduler="synchronous"):
        assert_same_rows(lazy.compute().to_numpy(), expected.to_numpy())


def test_pandas_output_of_a_series_bag_and_array(tiny_text_model, monkeypatch):
    import sklearn

    texts = _texts(10)
    enc = _encoder(tiny_text_model)
    expected = enc.transform(texts)
    names = list(enc.get_feature_names_out())
    series = dd.from_pandas(pd.Series(texts, index=list("abcdefghij")), npartitions=2)
    collections = {
        "series": (series, list("abcdefghij")),
        "array": (da.from_array(np.asarray(texts, dtype=object), chunks=4), list(range(10))),
        # a Bag's partition lengths are unknown: each partition counts from 0
        "bag": (db.from_sequence(texts, npartitions=2), [0, 1, 2, 3, 4] * 2),
    }
    encodes = _count_encodes(monkeypatch)
    with sklearn.config_context(transform_output="pandas"):  # the global setting too
        for kind, (collection, index) in collections.items():
            lazy = enc.transform(collection)
            assert isinstance(lazy, dd.DataFrame) and not encodes, kind
            assert list(lazy.columns) == names, kind
            with dask.config.set(scheduler="synchronous"):
                got = lazy.compute()
            assert got.index.tolist() == index, kind
            assert_same_rows(got.to_numpy(), expected, err_msg=kind)
            encodes.clear()


def test_an_output_container_without_a_dask_counterpart_is_refused(tiny_text_model):
    enc = _encoder(tiny_text_model).set_output(transform="polars")
    with pytest.raises(InvalidInputError, match=r"transform='polars'\), which has no dask"):
        enc.transform(db.from_sequence(_texts(4), npartitions=2))
