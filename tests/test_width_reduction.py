"""``n_components``: the encoders' optional PCA, fitted on the training embeddings."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from sktransfer import ImageEncoder, TextEncoder
from sktransfer.cache import cache_info
from sktransfer.exceptions import InvalidInputError
from tests.conftest import image_samples, text_samples


def _texts(n=24):
    texts, _ = text_samples(n)
    return [f"{t} {i}" for i, t in enumerate(texts)]  # distinct rows


def test_the_output_is_the_pca_of_the_full_embeddings(tiny_text_model):
    texts = _texts()
    full = TextEncoder(tiny_text_model, progress=False, cache=None).fit().transform(texts)
    encoder = TextEncoder(
        tiny_text_model, n_components=5, random_state=0, progress=False, cache=None
    ).fit(texts)
    expected = PCA(n_components=5, random_state=0).fit(full).transform(full)
    reduced = encoder.transform(texts)
    assert reduced.dtype == np.float32 and reduced.shape == (len(texts), 5)
    np.testing.assert_allclose(reduced, expected, rtol=1e-4, atol=1e-5)
    assert encoder.n_features_out_ == 5 and encoder.embedding_dim_ == full.shape[1] == 32
    np.testing.assert_allclose(encoder.fit_transform(texts), reduced, rtol=1e-5, atol=1e-6)


def test_names_follow_the_column_or_the_class(tiny_text_model):
    frame = pd.DataFrame({"review": _texts()})
    encoder = TextEncoder(tiny_text_model, n_components=3, progress=False, cache=None)
    assert list(encoder.fit(frame).get_feature_names_out()) == [
        "review_pca0",
        "review_pca1",
        "review_pca2",
    ]
    assert list(encoder.fit(_texts()).get_feature_names_out()) == [
        "textencoder_pca0",
        "textencoder_pca1",
        "textencoder_pca2",
    ]
    out = encoder.set_output(transform="pandas").fit(frame).transform(frame)
    assert list(out.columns) == ["review_pca0", "review_pca1", "review_pca2"]


def test_in_a_column_transformer_next_to_numbers(tiny_text_model):
    table = pd.DataFrame({"review": _texts(), "price": np.arange(24.0)})
    columns = ColumnTransformer(
        [
            ("text", TextEncoder(tiny_text_model, n_components=4, progress=False), "review"),
            ("num", StandardScaler(), ["price"]),
        ]
    ).set_output(transform="pandas")
    out = columns.fit_transform(table)
    assert list(out.columns) == [f"text__review_pca{i}" for i in range(4)] + ["num__price"]
    assert np.array_equal(columns.transform(table).to_numpy(), out.to_numpy())


def test_the_cache_keeps_full_width_rows_shared_with_the_unreduced_encoder(tiny_text_model):
    texts = _texts()
    full = TextEncoder(tiny_text_model, progress=False).fit().transform(texts)
    reducer = TextEncoder(tiny_text_model, n_components=2, progress=False)
    reducer.fit(texts)
    assert reducer.cache_info().misses == 0  # fit read every row from the cache
    assert reducer.model_fingerprint_ == TextEncoder(tiny_text_model).fit().model_fingerprint_
    assert cache_info().entries == len(texts)
    np.testing.assert_allclose(reducer.transform(texts), reducer.pca_.transform(full), atol=1e-5)


def test_pickled_and_cloned(tiny_text_model):
    texts = _texts()
    encoder = TextEncoder(tiny_text_model, n_components=3, progress=False, cache=None).fit(texts)
    restored = pickle.loads(pickle.dumps(encoder))
    assert np.array_equal(restored.transform(texts), encoder.transform(texts))
    assert restored.get_params()["n_components"] == 3


def test_more_components_than_samples_says_what_to_do(tiny_text_model):
    encoder = TextEncoder(tiny_text_model, n_components=10, progress=False, cache=None)
    with pytest.raises(InvalidInputError, match=r"at most min\(n_samples, width\) = 6.*samples"):
        encoder.fit(_texts(6))
    wide = TextEncoder(tiny_text_model, n_components=40, progress=False, cache=None)
    with pytest.raises(InvalidInputError, match=r"= 32 \(the number of embedding columns\)"):
        wide.fit(_texts(48))
    with pytest.raises(InvalidInputError, match=r"call fit\(X\) with the samples"):
        encoder.fit()


def test_image_encoder_reduces_and_keeps_failed_rows_nan(tiny_image_weights):
    images, _ = image_samples(12, size=32)
    encoder = ImageEncoder(
        "test_efficientnet",
        weights=tiny_image_weights,
        image_size=32,
        n_components=4,
        random_state=0,
        on_error="nan",
        progress=False,
        cache=None,
    ).fit(images)
    assert encoder.transform(images).shape == (12, 4)
    with pytest.warns(UserWarning, match="could not decode 1 image"):
        out = encoder.transform([images[0], b"not an image"])
    assert np.isfinite(out[0]).all() and np.isnan(out[1]).all()


def test_dask_input_is_reduced_lazily(tiny_text_model):
    import dask
    import dask.bag as db

    texts = _texts()
    encoder = TextEncoder(tiny_text_model, n_components=3, progress=False, cache=None)
    with dask.config.set(scheduler="sync"):
        encoder.fit(db.from_sequence(texts, npartitions=2))
        lazy = encoder.transform(db.from_sequence(texts, npartitions=3))
        assert lazy.shape[1] == 3
        got = lazy.compute()
    np.testing.assert_allclose(got, encoder.transform(texts), rtol=1e-5, atol=1e-6)
    with dask.config.set(scheduler="sync"):
        lazy = encoder.fit_transform(db.from_sequence(texts, npartitions=2))
        assert dask.is_dask_collection(lazy)
        np.testing.assert_allclose(lazy.compute(), got, rtol=1e-5, atol=1e-6)
        encoder.set_output(transform="pandas")
        frame = encoder.fit_transform(db.from_sequence(texts, npartitions=2))
        assert list(frame.columns) == ["textencoder_pca0", "textencoder_pca1", "textencoder_pca2"]


@pytest.mark.parametrize("container", ["default", "pandas"])
@pytest.mark.parametrize("kind", ["bag", "frame", "array"])
def test_dask_fit_transform_encodes_each_partition_once(
    tiny_text_model, monkeypatch, kind, container
):
    import dask
    import dask.array as da
    import dask.bag as db
    import dask.dataframe as dd

    texts = [f"{t} {i}" for i, t in enumerate(_texts())]  # distinct rows
    local = pd.DataFrame({"text": texts}, index=pd.RangeIndex(50, 50 + len(texts)))
    collection = {
        "bag": lambda: db.from_sequence(texts, npartitions=3),
        "frame": lambda: dd.from_pandas(local, npartitions=3),
        "array": lambda: da.from_array(np.asarray(texts, dtype=object), chunks=9),
    }[kind]
    calls = []
    encode = TextEncoder._encode

    def counted(self, items, *args, **kwargs):
        calls.append(len(items))
        return encode(self, items, *args, **kwargs)

    encoder = TextEncoder(tiny_text_model, n_components=3, progress=False, cache=None)
    encoder.set_output(transform=container)
    expected = encoder.fit(texts).transform(texts)  # in process, the same PCA (same rows)
    monkeypatch.setattr(TextEncoder, "_encode", counted)
    with dask.config.set(scheduler="sync"):
        lazy = encoder.fit_transform(collection())
        assert dask.is_dask_collection(lazy)
        assert sum(calls) == len(texts)  # fit encoded every row once, to fit the PCA
        got = lazy.compute()
    assert sum(calls) == len(texts)  # and the result is the kept rows, projected
    if container == "pandas":
        assert list(got.columns) == list(encoder.get_feature_names_out())
        assert (got.dtypes == np.float32).all()
        if kind == "frame":
            pd.testing.assert_index_equal(got.index, local.index)
        got = got.to_numpy()
    assert got.dtype == np.float32 and got.shape == (len(texts), 3)
    np.testing.assert_allclose(got, np.asarray(expected), rtol=1e-4, atol=1e-5)
