"""Text inputs the tokenizer cannot take are refused up front, naming the position."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sktransfer import TextEncoder
from sktransfer.exceptions import InvalidInputError
from sktransfer.text import check_texts
from tests.conftest import text_samples
from tests.finetune_helpers import one_torch_thread  # noqa: F401  (an autouse fixture)


@pytest.mark.parametrize("bad", ["\ud800", "ok \udcff then", "\udfff"])
def test_lone_surrogate_names_position_and_character(bad):
    with pytest.raises(InvalidInputError, match=r"position 2.*U\+D[89A-F][0-9A-F]{2}") as info:
        check_texts(["fine", "also fine", bad])
    message = str(info.value)
    assert "encode('utf-8', 'replace')" in message
    assert f"character {bad.index(next(c for c in bad if 0xD800 <= ord(c) <= 0xDFFF))}" in message


def test_surrogate_pair_written_as_one_character_is_fine():
    assert check_texts(["\U0001f600 emoji", "e\u0301", "\u202eabc", "a\x00b"]) == [
        "\U0001f600 emoji",
        "e\u0301",
        "\u202eabc",
        "a\x00b",
    ]


def test_surrogate_in_series_names_the_index_label_too():
    # dtype=object: pandas' pyarrow-backed str dtype cannot hold a lone surrogate at all
    series = pd.Series(["a", "b", "bad \ud800"], index=["x", "y", "z"], dtype=object)
    with pytest.raises(InvalidInputError, match=r"position 2 \(index 'z'\)"):
        check_texts(series)
    frame = series.to_frame("review")
    with pytest.raises(InvalidInputError, match=r"position 2 \(index 'z'\)"):
        check_texts(frame)


def test_missing_and_wrong_types_in_series_name_the_index_label():
    series = pd.Series(["a", None, 3], index=[10, 20, 30])
    with pytest.raises(InvalidInputError, match=r"2 \(index 30\) \(int\)"):
        check_texts(series)
    series = pd.Series(["a", None], index=[10, 20])
    with pytest.raises(InvalidInputError, match=r"positions 1 \(index 20\)"):
        check_texts(series)


def test_default_range_index_shows_positions_only():
    with pytest.raises(InvalidInputError, match=r"positions 1\. Fill"):
        check_texts(pd.Series(["a", None]))


def _object_series(values):
    return pd.Series(values, dtype=object)  # a str dtype backed by pyarrow refuses surrogates


@pytest.mark.parametrize("container", [list, tuple, np.array, _object_series])
def test_text_encoder_transform_refuses_surrogate(tiny_text_model, container):
    encoder = TextEncoder(tiny_text_model, progress=False).fit()
    with pytest.raises(InvalidInputError, match=r"position 1 .*U\+D800"):
        encoder.transform(container(["good", "bad \ud800"]))


def test_text_classifier_fit_and_predict_refuse_surrogate(tiny_text_model):
    from sktransfer.finetune import TextClassifier

    texts, y = text_samples(8)
    model = TextClassifier(tiny_text_model, epochs=1, early_stopping=False, batch_size=4)
    bad = pd.Series(texts[:-1] + ["oops \ud800"], index=range(100, 108), dtype=object)
    with pytest.raises(InvalidInputError, match=r"position 7 \(index 107\)"):
        model.fit(bad, y)
    model.fit(texts, y)
    with pytest.raises(InvalidInputError, match=r"position 0 .*U\+DFFF"):
        model.predict(["\udfff"])
