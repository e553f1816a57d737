"""Texts longer than the model's limit: a warning when they are cut, or chunking.

The tiny model reads 48 tokens ([CLS] + 46 text tokens + [SEP]); every word of
its vocabulary is one token, so a text of n such words is n + 2 tokens long.
Value checks run without the embedding cache (``cache=None``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn import clone
from sklearn.utils._param_validation import InvalidParameterError

from sktransfer import TextClassifier, TextEncoder, TextRegressor
from sktransfer.exceptions import TruncationWarning
from tests.conftest import TINY_WORDS, text_samples

LIMIT = 48  # the tiny model's max_seq_length
ROOM = LIMIT - 2  # text tokens that fit beside [CLS] and [SEP]


def words(n: int, offset: int = 0) -> list[str]:
    """``n`` one-token words of the tiny vocabulary."""
    return [TINY_WORDS[(offset + i) % len(TINY_WORDS)] for i in range(n)]


def text(n: int, offset: int = 0) -> str:
    return " ".join(words(n, offset))


# Two long texts that share their first 60 words and differ in their endings.
COMMON = text(60)
LONG_A = COMMON + " great good superb fun love like"
LONG_B = COMMON + " awful bad terrible boring hate not"


def encoder(model, **params) -> TextEncoder:
    return TextEncoder(model, progress=False, cache=None, **params).fit()


def truncation_warnings(record) -> list:
    return [w for w in record if issubclass(w.category, TruncationWarning)]


# ------------------------------------------------------------------ truncate
def test_texts_differing_after_the_limit_get_one_row_and_one_warning(tiny_text_model):
    X = [LONG_A, "a great movie", LONG_B, "a bad film"]
    with pytest.warns(TruncationWarning) as record:
        out = encoder(tiny_text_model).transform(X)
    np.testing.assert_array_equal(out[0], out[2])  # the endings were never read
    assert not np.array_equal(out[1], out[3])
    (warning,) = truncation_warnings(record)  # one warning for the whole call
    message = str(warning.message)
    assert "2 texts were longer than the model's limit of 48 tokens" in message
    assert "positions 0, 2)" in message
    assert "long_texts='chunk'" in message
    assert "raise max_length (this model reads up to 64 tokens)" in message
    assert warning.filename == __file__  # points at the caller's line


def test_a_text_that_fits_exactly_is_not_reported(tiny_text_model):
    enc = encoder(tiny_text_model)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncationWarning)
        enc.transform([text(ROOM), "a short one"])
    with pytest.warns(TruncationWarning, match=r"1 text was longer .* \(position 1\)"):
        enc.transform(["a short one", text(ROOM + 1)])


def test_the_count_covers_every_cut_text_and_lists_the_first_positions(tiny_text_model):
    X = [f"{COMMON} {word}" for word in words(8)] + ["short"]
    X = X[::-1]  # the short text first: the long ones sit at positions 1..8
    with pytest.warns(TruncationWarning, match=r"8 texts .*positions 1, 2, 3, 4, 5 and 3 more"):
        encoder(tiny_text_model).transform(X)


def test_repeated_long_texts_count_once_at_their_first_position(tiny_text_model):
    X = ["short", LONG_A, LONG_A, "short", LONG_A]
    with pytest.warns(TruncationWarning, match=r"1 text was longer .* \(position 1\)"):
        encoder(tiny_text_model).transform(X)


def test_a_smaller_max_length_is_the_limit_reported(tiny_text_model):
    with pytest.warns(TruncationWarning, match="limit of 16 tokens") as record:
        encoder(tiny_text_model, max_length=16).transform([text(20), text(10)])
    assert "position 0)" in str(truncation_warnings(record)[0].message)


def test_at_the_position_limit_max_length_is_not_suggested(tiny_text_model):
    with pytest.warns(TruncationWarning) as record:
        encoder(tiny_text_model, max_length=64).transform([text(70)])
    message = str(truncation_warnings(record)[0].message)
    assert "limit of 64 tokens" in message
    assert "max_length" not in message and "long_texts='chunk'" in message


def test_cached_transforms_report_the_texts_they_encode(tiny_text_model):
    enc = TextEncoder(tiny_text_model, progress=False, cache="memory").fit()
    with pytest.warns(TruncationWarning, match=r"1 text was longer .* \(position 1\)"):
        enc.transform(["short", LONG_A])
    # LONG_A comes from the cache now; LONG_B is new, at position 2 of this call.
    with pytest.warns(TruncationWarning, match=r"1 text was longer .* \(position 2\)"):
        enc.transform([LONG_A, "short", LONG_B, LONG_B])
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncationWarning)
        enc.transform([LONG_B, LONG_A])  # nothing encoded, nothing to report


def test_truncating_output_is_what_it_was(tiny_text_model):
    """The default reads what sentence-transformers reads: its ``encode``, to float rounding."""
    X = [LONG_A, "a great movie", LONG_B, text(ROOM), "a great movie"]
    enc = encoder(tiny_text_model, batch_size=2)
    with pytest.warns(TruncationWarning):
        ours = enc.transform(X)
    reference = enc.model_.encode(X, batch_size=2, convert_to_numpy=True)
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------- chunk
def test_chunking_reads_the_endings_without_a_warning(tiny_text_model):
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncationWarning)
        out = encoder(tiny_text_model, long_texts="chunk").transform([LONG_A, LONG_B])
    assert not np.allclose(out[0], out[1])


def test_short_texts_give_exactly_the_same_rows_with_chunking(tiny_text_model):
    X, _ = text_samples(20)
    X = X + [text(ROOM)]  # as long as fits: still one window
    truncated = encoder(tiny_text_model, batch_size=4).transform(X)
    chunked = encoder(tiny_text_model, batch_size=4, long_texts="chunk").transform(X)
    np.testing.assert_array_equal(chunked, truncated)


def test_windows_are_pooled_by_their_token_counts(tiny_text_model):
    # 46 + 20 words, no overlap: the windows are exactly the two parts.
    first, second = text(ROOM), text(20, offset=ROOM)
    parts = encoder(tiny_text_model).transform([first, second])
    whole = f"{first} {second}"
    weighted = encoder(tiny_text_model, long_texts="chunk", chunk_overlap=0.0).transform([whole])
    expected = (ROOM * parts[0] + 20 * parts[1]) / (ROOM + 20)
    np.testing.assert_allclose(weighted[0], expected, rtol=1e-5, atol=1e-6)
    mean = encoder(
        tiny_text_model, long_texts="chunk", chunk_overlap=0.0, chunk_pooling="mean"
    ).transform([whole])
    np.testing.assert_allclose(mean[0], parts.mean(axis=0), rtol=1e-5, atol=1e-6)


def test_overlapping_windows_step_by_the_unshared_share(tiny_text_model):
    # 92 words, windows of 46 with half of them shared: words 0-45, 23-68, 46-91.
    sequence = words(92)
    windows = [" ".join(sequence[a : a + ROOM]) for a in (0, 23, 46)]
    parts = encoder(tiny_text_model).transform(windows)
    out = encoder(tiny_text_model, long_texts="chunk", chunk_overlap=0.5).transform(
        [" ".join(sequence)]
    )
    np.testing.assert_allclose(out[0], parts.mean(axis=0), rtol=1e-5, atol=1e-6)


def test_rows_stay_aligned_with_short_long_and_repeated_texts(tiny_text_model):
    X = [LONG_A, "a great movie", LONG_A, LONG_B, "i hate it", "a great movie", text(150, 3)]
    enc = encoder(tiny_text_model, long_texts="chunk", batch_size=3)
    out = enc.transform(X)
    one_by_one = np.vstack([enc.transform([x]) for x in X])
    np.testing.assert_allclose(out, one_by_one, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out[0], out[2])
    np.testing.assert_array_equal(out[1], out[5])
    assert len({row.tobytes() for row in out}) == 5


def test_chunked_rows_are_unit_length_when_normalize_is_set(tiny_text_model):
    out = encoder(tiny_text_model, long_texts="chunk", normalize=True).transform(
        [LONG_A, LONG_B, "short"]
    )
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-6)


def test_chunking_follows_a_smaller_max_length(tiny_text_model):
    # max_length=12: windows of 10 words; 30 words, no overlap: three windows.
    sequence = words(30)
    parts = encoder(tiny_text_model, max_length=12).transform(
        [" ".join(sequence[a : a + 10]) for a in (0, 10, 20)]
    )
    out = encoder(tiny_text_model, max_length=12, long_texts="chunk", chunk_overlap=0.0).transform(
        [" ".join(sequence)]
    )
    np.testing.assert_allclose(out[0], parts.mean(axis=0), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------- parameters and cache
def test_chunking_parameters_are_part_of_the_cache_key(tiny_text_model):
    base = TextEncoder(tiny_text_model, progress=False).fit()
    # Truncation reads no chunking setting: same key as ever.
    same = clone(base).set_params(chunk_overlap=0.5, chunk_pooling="mean").fit()
    assert same.model_fingerprint_ == base.model_fingerprint_
    chunked = clone(base).set_params(long_texts="chunk").fit()
    assert chunked.model_fingerprint_ != base.model_fingerprint_
    for params in ({"chunk_overlap": 0.5}, {"chunk_pooling": "mean"}):
        other = clone(chunked).set_params(**params).fit()
        assert other.model_fingerprint_ != chunked.model_fingerprint_


def test_the_cache_never_serves_a_truncated_row_to_a_chunking_encoder(tiny_text_model):
    X = [LONG_A, LONG_B, "short"]
    with pytest.warns(TruncationWarning):
        TextEncoder(tiny_text_model, progress=False).fit().transform(X)  # fills the cache
    cached = TextEncoder(tiny_text_model, progress=False, long_texts="chunk").fit().transform(X)
    np.testing.assert_array_equal(cached, encoder(tiny_text_model, long_texts="chunk").transform(X))


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("long_texts", "split"),
        ("chunk_overlap", 1.0),
        ("chunk_overlap", -0.1),
        ("chunk_pooling", "max"),
    ],
)
def test_bad_chunking_parameters_are_reported_at_fit(tiny_text_model, param, value):
    enc = TextEncoder(tiny_text_model, **{param: value})
    with pytest.raises(InvalidParameterError, match=param):
        enc.fit()


# ---------------------------------------------------------------- fine-tuners
@pytest.mark.parametrize("cls", [TextClassifier, TextRegressor])
def test_fine_tuners_warn_at_fit_and_predict(tiny_text_model, cls):
    X = ["a great movie", LONG_A, "a bad film", LONG_B] * 2
    y = np.array([1, 1, 0, 0] * 2)
    est = cls(tiny_text_model, trainable_blocks=0, epochs=1, batch_size=4, random_state=0)
    with pytest.warns(TruncationWarning) as record:
        est.fit(X, y)
    (warning,) = truncation_warnings(record)
    message = str(warning.message)
    assert message.startswith(f"{cls.__name__}: 4 texts were longer than the model's limit of 48")
    assert "positions 1, 3, 5, 7)" in message
    assert "Raise max_length (this model reads up to 64 tokens)" in message
    assert warning.filename == __file__
    with pytest.warns(TruncationWarning, match=r"1 text was longer .* \(position 0\)"):
        est.predict([LONG_A, "short"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncationWarning)
        est.predict(["a great movie", text(ROOM)])
