"""transfer_report: known answers on synthetic data, pairing, the cache, the outputs.

The verdicts are checked where the truth is known by construction:

- the label is carried by words the tiny model cannot read (out of its vocabulary,
  so every such word becomes the same [UNK] token): n-gram features see it, the
  pretrained features do not -> "negative transfer";
- the label is carried by the *meaning* of words that each appear once (a
  lexicon that a "pretrained" encoder knows and the n-gram models never see
  twice) -> "transfer helps";
- the pretrained features and the words carry the same information -> "no
  evidence either way".
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.validation import check_is_fitted

from sktransfer import ImageEncoder, TextEncoder, transfer_report
from sktransfer.cache import cache_info
from sktransfer.exceptions import InvalidInputError
from tests.conftest import image_samples

LETTERS = np.array(list("bcdfghjklmnpqrstvwxz"))


def _nonsense_words(n, rng, length=7):
    return ["".join(rng.choice(LETTERS, length)) for _ in range(n)]


# A "pretrained" lexicon: word -> meaning (a group id), known to the encoder below.
_LEXICON: dict[str, int] = {}


def lexicon_features(texts):
    """Each text's meaning (the group of its last word) as one-hot columns plus noise."""
    out = np.zeros((len(texts), 3))
    for i, text in enumerate(texts):
        word = text.split()[-1]
        out[i, _LEXICON[word]] = 1.0
        out[i, 2] = (hash(word) % 1000) / 1000.0  # a column without signal
    return out


def lexicon_encoder():
    return FunctionTransformer(lexicon_features)


@pytest.fixture
def lexicon():
    _LEXICON.clear()
    yield _LEXICON
    _LEXICON.clear()


def unreadable_signal(n=160, seed=0):
    """The label is the last word, one of two the tiny model reads as the same [UNK]."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    words = "the a movie film book great awful good bad cat dog".split()
    texts = [" ".join(rng.choice(words, 4)) + (" zorblat" if v else " quixel") for v in y]
    return texts, y


def test_signal_only_in_ngrams_is_called_negative_transfer(tiny_text_model):
    texts, y = unreadable_signal()
    report = transfer_report(
        texts, y, candidates=[tiny_text_model], cv=4, random_state=0, combine=False
    )
    assert report.verdict_.startswith("negative transfer: the from-scratch model (TF-IDF")
    row = report.results_.loc["st + LR"]
    assert row["verdict"] == "negative transfer"
    assert row["ci_high"] < 0 and row["p_value"] < 0.05
    assert report.best_name_ == report.reference_


def test_signal_only_in_pretrained_features_is_called_helps(lexicon):
    rng = np.random.default_rng(1)
    n = 160
    words = _nonsense_words(n, rng)  # every word appears once
    groups = rng.integers(0, 2, n)
    lexicon.update(zip(words, groups, strict=True))
    flip = rng.random(n) < 0.1
    y = np.where(flip, 1 - groups, groups)
    texts = [f"it is {w}" for w in words]
    report = transfer_report(
        texts, y, candidates={"lexicon": lexicon_encoder()}, cv=4, random_state=0
    )
    assert report.verdict_.startswith("transfer helps: better than the from-scratch model")
    row = report.results_.loc["lexicon"]
    assert row["kind"] == "pretrained"
    assert row["verdict"] == "transfer helps" and row["ci_low"] > 0.2
    assert report.best_name_ in ("lexicon", report.results_.index[0])
    # The combination keeps the pretrained signal: it helps too.
    combined = report.results_[report.results_["kind"] == "pretrained + from scratch"]
    assert list(combined["verdict"]) == ["transfer helps"]
    assert "pretrained + from-scratch features" in report.verdict_


def word_identity_features(texts):
    """The identity of each text's third word (one-hot), and a column of noise."""
    out = np.zeros((len(texts), len(_LEXICON) + 1))
    for i, text in enumerate(texts):
        out[i, _LEXICON[text.split()[2]]] = 1.0
        out[i, -1] = (zlib.crc32(text.encode()) % 1000) / 1000.0
    return out


def test_the_same_information_is_a_near_tie(lexicon):
    # The "pretrained" features hold exactly what the word counts hold (which word it
    # is) plus a column of noise: both models learn the same rule, up to the noise.
    rng = np.random.default_rng(0)
    vocabulary = _nonsense_words(12, rng)
    lexicon.update((w, i) for i, w in enumerate(vocabulary))
    n = 240
    chosen = rng.choice(vocabulary, n)
    groups = np.array([lexicon[w] % 2 for w in chosen])
    y = np.where(rng.random(n) < 0.25, 1 - groups, groups)
    texts = [f"it is {w} {i}" for i, w in enumerate(chosen)]
    report = transfer_report(
        texts,
        y,
        candidates={"same words": FunctionTransformer(word_identity_features)},
        baselines={"words": make_words_baseline()},
        cv=5,
        random_state=0,
        combine=False,
    )
    row = report.results_.loc["same words"]
    assert row["verdict"] == "no evidence either way"
    assert abs(row["difference"]) < 0.02 and row["ci_low"] < 0 < row["ci_high"]
    assert report.scores_["same words"].ne(report.scores_["words"]).any()  # not identical
    assert report.verdict_.startswith("no evidence either way: difference to the from-scratch")


def make_words_baseline():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline

    return make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=1000))


@pytest.fixture(scope="module")
def small(tiny_text_model):
    """(texts, y, report): 60 texts, 3 folds, learning curves at 20 and 40 samples."""
    texts, y = unreadable_signal(n=60)
    report = transfer_report(
        texts,
        y,
        candidates=[tiny_text_model],
        cv=3,
        n_repeats=1,
        train_sizes=[0.5, 1.0],
        random_state=0,
    )
    return texts, y, report


def test_every_candidate_is_scored_on_the_same_splits(small):
    texts, y, report = small
    assert len(report.splits_) == 3
    assert report.scores_.shape == (3, len(report.results_))
    # Refit candidates by hand on split 2: the stored score is that split's score.
    train, test = report.splits_[2]
    for name in ("st + LR", report.reference_):
        model = clone(report.estimators_[name])
        model.fit([texts[i] for i in train], y[train])
        hand = model.score([texts[i] for i in test], y[test])
        assert report.scores_.loc[2, name] == pytest.approx(hand)
    # Per-split differences are what the comparison tested.
    d = report.scores_["st + LR"] - report.scores_[report.reference_]
    assert report.results_.loc["st + LR", "difference"] == pytest.approx(d.mean())


def test_each_sample_is_encoded_once(tiny_text_model):
    texts, y = unreadable_signal(n=60)
    distinct = len(set(texts))
    report = transfer_report(texts, y, candidates=[tiny_text_model], cv=3, random_state=0)
    stats = cache_info("memory")
    # Two pretrained candidates (alone, combined) x 6 splits read it: all from the cache.
    assert stats.misses == distinct
    assert stats.hits >= 2 * 6 * len(texts)
    assert report.results_["encode_s"].notna().sum() == 2


def test_an_interrupted_report_keeps_what_was_encoded(tiny_text_model, tmp_path, monkeypatch):
    from sktransfer.report import _report

    texts, y = unreadable_signal(n=40)
    real = _report._cross_validate

    def interrupt_after_encoding(cand, *args, **kwargs):
        if cand.encoder is not None:
            raise KeyboardInterrupt
        return real(cand, *args, **kwargs)

    monkeypatch.setattr(_report, "_cross_validate", interrupt_after_encoding)
    with pytest.raises(KeyboardInterrupt):
        transfer_report(texts, y, candidates=[tiny_text_model], cv=2, cache=str(tmp_path))
    monkeypatch.setattr(_report, "_cross_validate", real)
    encoded = []
    original = TextEncoder._encode
    monkeypatch.setattr(
        TextEncoder,
        "_encode",
        lambda self, items, *a, **k: encoded.append(len(items)) or original(self, items, *a, **k),
    )
    transfer_report(texts, y, candidates=[tiny_text_model], cv=2, cache=str(tmp_path))
    assert encoded == []  # the rerun read every sample from the cache


def test_best_is_unfitted_and_fits(small):
    texts, y, report = small
    with pytest.raises(NotFittedError, match="not fitted"):
        check_is_fitted(report.best_)
    assert report.best_.fit(texts, y).score(texts, y) > 0.9


def test_dataframe_column_and_target_name():
    texts, y = unreadable_signal(n=60)
    frame = pd.DataFrame({"id": range(60), "review": texts, "label": np.where(y, "pos", "neg")})
    report = transfer_report(
        frame, "label", column="review", candidates=None, cv=3, n_repeats=1, random_state=0
    )
    assert report.verdict_.startswith("no pretrained candidate was given")
    assert report.modality_ == "text" and report.task_ == "classification"
    assert report.n_samples_ == 60


def test_learning_curves_pair_candidates_at_each_size(small):
    _, _, report = small
    curves = report.learning_curves_
    assert len(curves) == 2 * len(report.results_)
    assert sorted(set(curves["train_size"])) == [20, 40]
    full = curves[curves["train_size"] == 40].set_index("candidate")
    # At the full size, the curve is the cross-validated score (same splits).
    for name, row in report.results_.iterrows():
        assert full.loc[name, "score_mean"] == pytest.approx(row["score_mean"], abs=0.02)
    pretrained = full.loc["st + LR"]
    assert pretrained["verdict"] in ("negative transfer", "no evidence either way")


def test_regression_uses_r2_and_ridge(tiny_text_model):
    texts, y = unreadable_signal(n=60)
    target = y + np.linspace(0, 0.3, 60)
    report = transfer_report(
        texts, target, candidates=[tiny_text_model], cv=3, n_repeats=1, random_state=0
    )
    assert report.task_ == "regression" and report.scoring_ == "r2"
    assert "TF-IDF words 1-2 + Ridge" in report.results_.index
    assert "r2" in report.verdict_


def test_images_get_the_pixel_baseline(tiny_image_weights):
    images, y = image_samples(n=24, size=24)
    encoder = ImageEncoder("test_efficientnet", weights=tiny_image_weights, image_size=32)
    report = transfer_report(np.stack(images), y, candidates=[encoder], cv=3, random_state=0)
    assert report.modality_ == "image"
    assert report.reference_ == "pixels 16x16 + LR"
    kinds = set(report.results_["kind"])
    assert kinds == {"from scratch", "pretrained", "pretrained + from scratch"}


def test_outputs_markdown_html_plot(small, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    _, _, report = small
    md = report.to_markdown()
    assert md.startswith(f"**Verdict:** {report.verdict_}")
    assert "| candidate | kind | accuracy mean |" in md
    assert "| st + LR | pretrained |" in md
    page = report.to_html(tmp_path / "r.html")
    assert (tmp_path / "r.html").read_text() == page
    assert "data:image/png;base64," in page and "Learning curves" in page
    assert report._repr_html_().startswith("<div><p><b>Verdict:</b>")
    figure = report.plot()
    assert len(figure.axes) == 2
    assert str(report).startswith("Verdict: ")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"y": [0, 1]}, "X has 6 samples but y has 2"),
        ({"candidates": [3.5]}, r"candidates\[0\] is a float"),
        ({"baselines": []}, "baselines must name at least one"),
        ({"candidates": [LogisticRegression()], "y": np.linspace(0, 1, 6)}, "is a classifier"),
        ({"modality": "audio"}, "modality='audio'"),
        ({"column": "text"}, "column='text' needs X to be a pandas DataFrame"),
        ({"cv": 1}, "cv=1 must be at least 2"),
    ],
)
def test_bad_arguments_say_what_to_do(kwargs, message):
    args = {"X": ["a b", "c d", "e f", "g h", "i j", "k l"], "y": [0, 1, 0, 1, 0, 1]}
    args.update(kwargs)
    with pytest.raises(InvalidInputError, match=message):
        transfer_report(args.pop("X"), args.pop("y"), **args)


def test_dataframe_errors_name_the_columns():
    frame = pd.DataFrame({"text": ["a", "b"], "label": [0, 1], "other": [1, 2]})
    with pytest.raises(InvalidInputError, match=r"3 columns .*column=NAME"):
        transfer_report(frame, "label")
    with pytest.raises(InvalidInputError, match=r"y='target' is not a column of X"):
        transfer_report(frame, "target", column="text")


def test_missing_texts_are_named():
    with pytest.raises(InvalidInputError, match=r"1 missing or non-text entries \(positions 2\)"):
        transfer_report(["a", "b", None, "d"], [0, 1, 0, 1])


def test_parallel_splits_give_the_same_scores(lexicon):
    rng = np.random.default_rng(4)
    words = _nonsense_words(60, rng)
    lexicon.update((w, i % 2) for i, w in enumerate(words))
    y = np.array([lexicon[w] for w in words])
    texts = [f"it is {w}" for w in words]
    kwargs = {"candidates": {"lexicon": lexicon_encoder()}, "cv": 3, "n_repeats": 1}
    one = transfer_report(texts, y, random_state=0, **kwargs)
    two = transfer_report(texts, y, random_state=0, n_jobs=2, **kwargs)
    pd.testing.assert_frame_equal(one.scores_, two.scores_)


# One epoch on 20 texts learns little; that is not what this test is about.
@pytest.mark.filterwarnings("ignore::sktransfer.exceptions.UnderfitWarning")
def test_finetuning_candidates_on_request(tiny_text_model):
    texts, y = unreadable_signal(n=40)
    report = transfer_report(
        texts,
        y,
        candidates=[tiny_text_model],
        finetune={"epochs": 1, "batch_size": 8},
        combine=False,
        cv=2,
        n_repeats=1,
        random_state=0,
    )
    tuned = report.results_[report.results_["kind"] == "fine-tuned"]
    assert list(tuned.index) == ["st fine-tuned"]
    assert report.estimators_["st fine-tuned"].get_params()["epochs"] == 1
    assert tuned["verdict"].iloc[0] in ("negative transfer", "no evidence either way")
