"""Checks of the real VADER and Fashion-MNIST files, for machines that have them.

Not collected by the test suite (which needs no data set): run them
deliberately where the data is installed, for example after
``sudo apt-get install dataset-fashion-mnist`` and ``load_vader()``::

    python -m pytest tests/real_data_checks.py

Nothing is downloaded: a missing data set is an error here, not a skip.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from sktransfer.datasets import load_fashion_mnist, load_vader

VADER_COUNTS = {
    "tweets": 4200,
    "movie_reviews": 10605,
    "product_reviews": 3708,
    "nyt_editorials": 5190,
}


@pytest.fixture(scope="module")
def vader():
    return load_vader(download=False)


def test_vader_counts_and_order(vader):
    names, counts = np.unique(vader.domain, return_counts=True)
    assert dict(zip(names.tolist(), counts.tolist(), strict=True)) == VADER_COUNTS
    block_starts = np.flatnonzero(vader.domain[1:] != vader.domain[:-1]) + 1
    np.testing.assert_array_equal(block_starts, np.cumsum(list(VADER_COUNTS.values()))[:-1])


def test_vader_score_range(vader):
    assert vader.target.min() == -3.875 and vader.target.max() == 3.94117647059
    nyt = vader.target[vader.domain == "nyt_editorials"]
    assert (nyt.min(), nyt.max()) == (-2.8, 2.8)


@pytest.mark.parametrize(
    "domain, sentence_id, score, text",
    [
        ("tweets", "4", 2.857142857, "LMAO, AMAZING!"),
        ("movie_reviews", "3", -0.6, "Effective but too tepid biopic"),
        (
            "movie_reviews",
            "264",
            1.36,
            "Münch's genuine insight makes the film's occasional overindulgence forgivable.",
        ),
        (
            "product_reviews",
            "1_1",
            -0.9,
            "troubleshooting ad-2500 and ad-2600 no picture scrolling b/w.",
        ),
        ("product_reviews", "35_10", 1.7, "enjoy !"),  # a leading space in the file
    ],
)
def test_vader_sentences_match_the_files(vader, domain, sentence_id, score, text):
    (index,) = np.flatnonzero((vader.domain == domain) & (vader.ids == sentence_id))
    assert vader.data[index] == text
    assert vader.target[index] == score


def test_vader_last_ids(vader):
    last_ids = {domain: vader.ids[vader.domain == domain][-1] for domain in VADER_COUNTS}
    assert last_ids == {
        "tweets": "4200",
        "movie_reviews": "10605",
        "product_reviews": "309_8",
        "nyt_editorials": "500_9",
    }


def test_vader_text_oddities_are_counted(vader):
    """The figures docs/datasets.md gives: non-ASCII text and HTML entities."""
    texts = np.array(vader.data, dtype=object)

    def count(predicate):
        return {
            domain: sum(map(predicate, texts[vader.domain == domain])) for domain in VADER_COUNTS
        }

    assert count(lambda text: not text.isascii()) == {
        "tweets": 2,
        "movie_reviews": 133,
        "product_reviews": 0,
        "nyt_editorials": 0,
    }
    assert count(lambda text: re.search(r"&(amp|lt|gt);", text) is not None) == {
        "tweets": 162,
        "movie_reviews": 22,
        "product_reviews": 44,
        "nyt_editorials": 9,
    }
    assert not any("\ufffd" in text or "Ã" in text for text in texts)  # no mojibake


def test_fashion_train():
    bunch = load_fashion_mnist(subset="train", download=False)
    assert bunch.images.shape == (60000, 28, 28)
    np.testing.assert_array_equal(np.bincount(bunch.target), [6000] * 10)
    np.testing.assert_array_equal(bunch.target[:10], [9, 0, 0, 3, 0, 2, 7, 2, 5, 5])
    assert bunch.images.mean() == pytest.approx(72.9403522, abs=1e-6)


def test_fashion_test():
    bunch = load_fashion_mnist(subset="test", download=False)
    assert bunch.images.shape == (10000, 28, 28)
    np.testing.assert_array_equal(np.bincount(bunch.target), [1000] * 10)
    np.testing.assert_array_equal(bunch.target[:10], [9, 2, 1, 1, 6, 1, 4, 6, 5, 7])
