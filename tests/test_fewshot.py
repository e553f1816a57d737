"""FewShotTextClassifier and its pair sampler, on the tiny BERT built in the test session."""

from __future__ import annotations

import json
import pickle
import time
import tracemalloc

import numpy as np
import pytest
import torch
from sklearn.linear_model import LinearRegression, RidgeClassifier
from sklearn.tree import DecisionTreeClassifier

from sktransfer import FewShotTextClassifier, TextEncoder, _pairs
from sktransfer._adapters.text import TextAdapter as TextBackend
from sktransfer._fewshot import _has_disjoint_pair, _with_hard_negatives, contrastive_loss
from sktransfer._pairs import PairBatch, plan_multilabel_pair_batches, plan_pair_batches
from sktransfer.exceptions import SavedModelError
from tests.finetune_helpers import (  # noqa: F401 - fixture
    ANIMALS,
    FILLER,
    POSITIVE,
    one_torch_thread,
    toy_texts,
)

FAST = {"batch_size": 8, "learning_rate": 1e-3, "pairs_per_sample": 8, "random_state": 0}


def fewshot(model: str, **params) -> FewShotTextClassifier:
    return FewShotTextClassifier(model, verbose=0, **{**FAST, **params})


def toy_multilabel(n: int, seed: int = 0):
    """Texts with two independent labels: 0 (a positive word), 1 (an animal word)."""
    rng = np.random.default_rng(seed)
    texts, y = [], []
    for i in range(n):
        has = (i % 2, (i // 2) % 2)
        words = [rng.choice(FILLER), rng.choice(FILLER)]
        words += [rng.choice(POSITIVE)] * 2 if has[0] else []
        words += [rng.choice(ANIMALS)] * 2 if has[1] else []
        words.append(rng.choice(FILLER))
        texts.append(" ".join(words))
        y.append(has)
    return texts, np.asarray(y, dtype=np.int64)


# ------------------------------------------------------------- the sampler
@pytest.mark.parametrize(("n_classes", "per_class"), [(2, 8), (4, 3), (3, 17), (40, 2)])
@pytest.mark.parametrize("n_pairs", [2, 31, 500])
def test_plan_has_the_pairs_asked_balanced_within_batches(n_classes, per_class, n_pairs):
    codes = np.repeat(np.arange(n_classes), per_class)
    plan = plan_pair_batches(codes, n_pairs, 8, np.random.default_rng(0))
    assert sum(batch.n_pairs for batch in plan) == n_pairs // 2 * 2  # never more than asked
    for batch in plan:
        assert len(batch.rows) <= 8 and len(np.unique(batch.rows)) == len(batch.rows)
        assert (batch.left < batch.right).all() and batch.right.max() < len(batch.rows)
        labels = codes[batch.rows]
        np.testing.assert_array_equal(batch.same, labels[batch.left] == labels[batch.right])
        assert batch.same.sum() == (~batch.same).sum()  # balanced
        pairs = set(zip(batch.left.tolist(), batch.right.tolist(), strict=True))
        assert len(pairs) == batch.n_pairs  # no pair twice within a batch


def test_plan_uses_every_sample_about_equally():
    codes = np.repeat([0, 1, 2], [5, 9, 30])
    plan = plan_pair_batches(codes, 6000, 12, np.random.default_rng(1))
    seen = np.bincount(np.concatenate([b.rows for b in plan]), minlength=len(codes))
    assert seen.min() > 0
    for c in range(3):  # within a class, every sample is drawn in turn
        in_class = seen[codes == c]
        assert in_class.max() - in_class.min() <= 1


def test_plan_memory_grows_with_pairs_not_with_samples_squared():
    """200,000 samples of 100,000 classes: all pairs would be 2e10; a plan of 1,000 is small."""
    codes = np.repeat(np.arange(100_000), 2)
    tracemalloc.start()
    plan = plan_pair_batches(codes, 1000, 16, np.random.default_rng(0))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert sum(b.n_pairs for b in plan) == 1000
    # A few arrays of n_samples (the shuffled members, the cursors): about 10 MB.
    assert peak < 40 * 2**20, f"{peak / 2**20:.0f} MiB"


def test_plan_is_deterministic_with_a_seed():
    codes = np.repeat(np.arange(5), 7)
    a = plan_pair_batches(codes, 300, 10, np.random.default_rng(3))
    b = plan_pair_batches(codes, 300, 10, np.random.default_rng(3))
    c = plan_pair_batches(codes, 300, 10, np.random.default_rng(4))
    assert [x.rows.tolist() for x in a] == [y.rows.tolist() for y in b]
    assert [x.left.tolist() for x in a] == [y.left.tolist() for y in b]
    assert [x.rows.tolist() for x in a] != [y.rows.tolist() for y in c]


# ------------------------------------------------- the multi-label sampler
def _random_indicator(n: int, n_labels: int, density: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    indicator = rng.random((n, n_labels)) < density
    indicator[:2] = True  # every column has >= 2 positives
    return indicator


@pytest.mark.parametrize(
    ("n", "n_labels", "density"), [(12, 2, 0.5), (30, 5, 0.3), (50, 3, 0.1), (40, 12, 0.2)]
)
@pytest.mark.parametrize("n_pairs", [2, 31, 500])
def test_multilabel_plan_is_balanced_and_pairs_share_a_label(n, n_labels, density, n_pairs):
    indicator = _random_indicator(n, n_labels, density)
    plan = plan_multilabel_pair_batches(indicator, n_pairs, 8, np.random.default_rng(0))
    assert plan and sum(batch.n_pairs for batch in plan) == n_pairs // 2 * 2  # never more
    for batch in plan:
        assert len(np.unique(batch.rows)) == len(batch.rows)
        assert (batch.left < batch.right).all() and batch.right.max() < len(batch.rows)
        labels = indicator[batch.rows]
        overlap = (labels[batch.left] & labels[batch.right]).any(axis=1)
        np.testing.assert_array_equal(batch.same, overlap)  # positive = a shared label
        assert batch.same.sum() == (~batch.same).sum()  # balanced
        pairs = set(zip(batch.left.tolist(), batch.right.tolist(), strict=True))
        assert len(pairs) == batch.n_pairs


def test_multilabel_plan_uses_samples_without_labels_as_negatives():
    indicator = np.zeros((10, 1), dtype=bool)
    indicator[:5, 0] = True  # one label: its only negatives are the unlabeled samples
    plan = plan_multilabel_pair_batches(indicator, 40, 8, np.random.default_rng(0))
    assert sum(b.n_pairs for b in plan) == 40
    negatives = np.concatenate([b.rows[b.left[~b.same]] for b in plan])
    negatives = np.concatenate([negatives, *[b.rows[b.right[~b.same]] for b in plan]])
    assert (~indicator[negatives, 0]).any()


def test_multilabel_plan_ends_when_the_data_has_no_negatives():
    everyone = np.ones((30, 3), dtype=bool)  # every two samples share every label
    start = time.perf_counter()
    assert plan_multilabel_pair_batches(everyone, 10_000, 8, np.random.default_rng(0)) == []
    one_label = np.ones((6, 1), dtype=bool)
    assert plan_multilabel_pair_batches(one_label, 100, 4, np.random.default_rng(0)) == []
    assert time.perf_counter() - start < 5


def test_multilabel_plan_refuses_a_label_with_one_positive():
    indicator = np.array([[1, 1], [1, 0], [0, 0], [1, 0]], dtype=bool)
    with pytest.raises(ValueError, match="column 1 has 1"):
        plan_multilabel_pair_batches(indicator, 10, 4, np.random.default_rng(0))


def test_multilabel_plan_never_builds_an_n_by_n_array(monkeypatch):
    """20,000 samples: every pair would be 2e8; the plan enumerates a batch's pairs only."""
    sizes = []
    original = np.triu_indices

    def triu_indices(n, k=0, m=None):
        sizes.append(n)
        return original(n, k, m)

    monkeypatch.setattr(_pairs.np, "triu_indices", triu_indices)
    indicator = _random_indicator(20_000, 6, 0.2, seed=1)
    tracemalloc.start()
    start = time.perf_counter()
    plan = plan_multilabel_pair_batches(indicator, 2000, 16, np.random.default_rng(0))
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert sum(b.n_pairs for b in plan) == 2000
    assert sizes and max(sizes) <= 16
    assert peak < 20 * 2**20, f"{peak / 2**20:.0f} MiB"  # n² bools alone would be 400 MB
    assert seconds < 10


def test_multilabel_plan_is_deterministic_with_a_seed():
    indicator = _random_indicator(30, 4, 0.3)
    a = plan_multilabel_pair_batches(indicator, 200, 8, np.random.default_rng(3))
    b = plan_multilabel_pair_batches(indicator, 200, 8, np.random.default_rng(3))
    assert [x.rows.tolist() for x in a] == [y.rows.tolist() for y in b]
    assert [x.left.tolist() for x in a] == [y.left.tolist() for y in b]


def test_disjoint_pair_check():
    assert _has_disjoint_pair(np.array([[1, 0], [0, 1], [1, 1]], dtype=bool))
    assert not _has_disjoint_pair(np.array([[1, 0], [1, 1], [1, 1]], dtype=bool))
    assert _has_disjoint_pair(np.array([[1, 1], [0, 0]], dtype=bool))  # no labels: negative
    many = np.ones((5000, 3), dtype=bool)
    many[-1] = [False, True, False]
    many[-2] = [True, False, False]
    assert _has_disjoint_pair(many)
    assert not _has_disjoint_pair(many[:-1])


# ---------------------------------------------------------------- losses
def test_losses_reward_similar_positives_and_dissimilar_negatives():
    cos = torch.tensor([1.0, 0.2, 0.0, 0.9, 0.3])
    same = torch.tensor([True, True, False, False, False])
    cosine = contrastive_loss(cos, same, "cosine", 0.5)
    np.testing.assert_allclose(cosine.numpy(), [0.0, 0.64, 0.0, 0.81, 0.09], atol=1e-6)
    margin = contrastive_loss(cos, same, "contrastive", 0.5)
    # positives: d²/2 with d = 1 - cos; negatives: max(0, 0.5 - d)²/2
    np.testing.assert_allclose(margin.numpy(), [0.0, 0.32, 0.0, 0.08, 0.0], atol=1e-6)


def test_hard_negatives_are_the_most_similar_pairs_of_different_classes():
    embeddings = torch.nn.functional.normalize(
        torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.95, 0.05], [-1.0, 0.0]]), dim=1
    )
    labels = np.array([0, 0, 1, 1])
    batch = PairBatch(
        rows=np.arange(4),
        left=np.array([0, 0]),
        right=np.array([1, 3]),
        same=np.array([1, 0], bool),
    )
    left, right, same = _with_hard_negatives(embeddings, labels, batch)
    assert same.tolist() == [True, False]
    # The closest pair across classes is (0, 2), not the random (0, 3).
    assert (left[1].item(), right[1].item()) == (0, 2)


def test_multilabel_hard_negatives_share_no_label():
    embeddings = torch.nn.functional.normalize(
        torch.tensor([[1.0, 0.0], [0.99, 0.01], [0.9, 0.1], [-1.0, 0.0]]), dim=1
    )
    # Only (0, 2) and (0, 3) share no label; (1, 2), the most similar pair, shares one.
    labels = np.array([[1, 0], [1, 1], [0, 1], [0, 1]], dtype=bool)
    batch = PairBatch(
        rows=np.arange(4),
        left=np.array([0, 0]),
        right=np.array([1, 3]),
        same=np.array([1, 0], bool),
    )
    left, right, same = _with_hard_negatives(embeddings, labels, batch)
    assert same.tolist() == [True, False]
    assert (left[1].item(), right[1].item()) == (0, 2)


# --------------------------------------------------------------- training
def _class_gap(features: np.ndarray, labels: np.ndarray) -> float:
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    cos = unit @ unit.T
    same = labels[:, None] == labels[None, :]
    off_diagonal = ~np.eye(len(labels), dtype=bool)
    return float(cos[same & off_diagonal].mean() - cos[~same].mean())


@pytest.mark.parametrize("loss", ["cosine", "contrastive"])
def test_contrastive_training_moves_same_class_embeddings_closer(tiny_text_model, loss):
    X, y = toy_texts(24, n_classes=3)
    X_new, y_new = toy_texts(30, seed=5, n_classes=3)
    before = fewshot(tiny_text_model, trainable_blocks=0).fit(X, y)
    after = fewshot(tiny_text_model, loss=loss, epochs=3, pairs_per_sample=16).fit(X, y)
    assert before.history_ == [] and after.n_pairs_ == 3 * 16 * 24
    gap_before = _class_gap(before.embed(X_new), y_new)
    gap_after = _class_gap(after.embed(X_new), y_new)
    assert gap_after > gap_before + 0.2, (gap_before, gap_after)


def test_frozen_body_gives_the_encoder_features(tiny_text_model):
    X, y = toy_texts(12)
    clf = fewshot(tiny_text_model, trainable_blocks=0).fit(X, y)
    expected = TextEncoder(tiny_text_model, cache=None, progress=False).fit(X).transform(X)
    np.testing.assert_allclose(clf.embed(X), expected, rtol=1e-5, atol=1e-6)


def test_every_fit_starts_from_the_pretrained_weights(tiny_text_model):
    X, y = toy_texts(16)
    clf = fewshot(tiny_text_model)
    first = clf.fit(X, y).embed(X)
    frozen = fewshot(tiny_text_model, trainable_blocks=0).fit(X, y).embed(X)
    assert not np.allclose(first, frozen, atol=1e-4)  # training moved the body
    second = clf.fit(X, y).embed(X)  # a second fit of the same object starts over
    np.testing.assert_array_equal(first, second)


def test_max_length_reaches_the_tokenizer_during_training(tiny_text_model, monkeypatch):
    widths = []
    original = TextBackend.collate

    def collate(self, items, training):
        batch = original(self, items, training)
        if training:
            widths.append(batch["input_ids"].shape[1])
        return batch

    monkeypatch.setattr(TextBackend, "collate", collate)
    X = [" ".join(["great movie"] * 12 if i % 2 else ["awful book"] * 12) for i in range(8)]
    y = np.arange(8) % 2
    with pytest.warns(UserWarning, match="longer than"):
        fewshot(tiny_text_model, max_length=6).fit(X, y)
    assert widths and max(widths) == 6
    widths.clear()
    fewshot(tiny_text_model).fit(X, y)
    assert min(widths) > 6  # without max_length the same texts are longer


def test_hard_negative_mining_trains(tiny_text_model):
    X, y = toy_texts(16, n_classes=2)
    clf = fewshot(tiny_text_model, hard_negatives=True, loss="contrastive").fit(X, y)
    assert clf.n_pairs_ == 8 * 16 and np.isfinite(clf.history_[0]["train_loss"])
    assert clf.score(X, y) > 0.8


def test_max_pairs_caps_the_pairs(tiny_text_model):
    X, y = toy_texts(16)
    clf = fewshot(tiny_text_model, max_pairs=20, epochs=2).fit(X, y)
    assert [r["n_pairs"] for r in clf.history_] == [20, 20] and clf.n_pairs_ == 40


def _label_gap(features: np.ndarray, indicator: np.ndarray) -> float:
    """Mean cosine of pairs sharing a label minus that of pairs sharing none."""
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    cos = unit @ unit.T
    labels = indicator.astype(float)
    share = (labels @ labels.T) > 0
    off_diagonal = ~np.eye(len(indicator), dtype=bool)
    return float(cos[share & off_diagonal].mean() - cos[~share].mean())


def test_multilabel_training_moves_texts_sharing_a_label_closer(tiny_text_model):
    X, y = toy_multilabel(24)
    X_new, y_new = toy_multilabel(32, seed=5)
    before = fewshot(tiny_text_model, trainable_blocks=0).fit(X, y)
    after = fewshot(tiny_text_model, epochs=3, pairs_per_sample=16).fit(X, y)
    assert before.history_ == [] and after.n_pairs_ == 3 * 16 * 24
    gap_before = _label_gap(before.embed(X_new), y_new)
    gap_after = _label_gap(after.embed(X_new), y_new)
    assert gap_after > gap_before + 0.2, (gap_before, gap_after)


@pytest.mark.parametrize("dtype", [np.int64, bool, np.uint8])
def test_multilabel_fit_predicts_an_indicator_matrix(tiny_text_model, dtype):
    from sklearn.multiclass import OneVsRestClassifier

    X, y = toy_multilabel(24)
    clf = fewshot(tiny_text_model, epochs=2).fit(X, y.astype(dtype))
    assert clf.multilabel_ and isinstance(clf.head_, OneVsRestClassifier)
    predicted = clf.predict(X)
    assert predicted.shape == (24, 2) and predicted.dtype == np.dtype(dtype)
    assert set(np.unique(predicted.astype(int))) <= {0, 1}
    np.testing.assert_array_equal(clf.classes_, [0, 1])
    proba = clf.predict_proba(X)
    assert proba.shape == (24, 2) and ((proba >= 0) & (proba <= 1)).all()
    np.testing.assert_array_equal(predicted.astype(int), (proba > 0.5).astype(int))
    assert clf.decision_function(X).shape == (24, 2)
    assert clf.predict([]).shape == (0, 2) and clf.predict([]).dtype == np.dtype(dtype)
    assert clf.score(X, y.astype(dtype)) > 0.7  # subset accuracy
    assert clf.__sklearn_tags__().classifier_tags.multi_label


def test_multilabel_with_hard_negatives_and_a_ridge_head(tiny_text_model):
    X, y = toy_multilabel(16)
    clf = fewshot(
        tiny_text_model, hard_negatives=True, loss="contrastive", head=RidgeClassifier()
    ).fit(X, y)
    assert clf.n_pairs_ == 8 * 16 and np.isfinite(clf.history_[0]["train_loss"])
    assert not hasattr(clf, "predict_proba")
    assert clf.decision_function(X).shape == (16, 2) and clf.predict(X).shape == (16, 2)


def test_multilabel_sample_weight_reaches_the_heads(tiny_text_model):
    X, y = toy_multilabel(16)
    weights = np.where(np.arange(16) < 8, 1.0, 1e-6)
    plain = fewshot(tiny_text_model).fit(X, y)
    weighted = fewshot(tiny_text_model).fit(X, y, sample_weight=weights)
    np.testing.assert_array_equal(plain.embed(X), weighted.embed(X))  # pairs are unweighted
    assert not np.allclose(plain.head_.estimators_[0].coef_, weighted.head_.estimators_[0].coef_)


# ------------------------------------------------------------------ heads
def test_any_sklearn_classifier_is_a_head(tiny_text_model):
    X, y = toy_texts(16)
    clf = fewshot(tiny_text_model, head=RidgeClassifier(alpha=0.1)).fit(X, y)
    assert isinstance(clf.head_, RidgeClassifier) and clf.head_.alpha == 0.1
    assert not hasattr(clf, "predict_proba")  # a ridge head has no probabilities
    assert clf.decision_function(X).shape == (16,)
    np.testing.assert_array_equal(clf.predict(X), clf.head_.predict(clf.embed(X)))
    with pytest.raises(ValueError, match="head must be a scikit-learn classifier"):
        fewshot(tiny_text_model, head=LinearRegression()).fit(X, y)


def test_grid_search_tunes_the_head(tiny_text_model):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    X, y = toy_texts(16)
    est = fewshot(tiny_text_model, head=LogisticRegression(), pairs_per_sample=2)
    search = GridSearchCV(est, {"head__C": [0.01, 10.0]}, cv=2).fit(X, y)
    assert search.best_estimator_.head_.C in (0.01, 10.0)


# -------------------------------------------------------------- bad input
def test_one_class_is_refused(tiny_text_model):
    with pytest.raises(ValueError, match="at least 2 classes in y; got only the class 'a'"):
        fewshot(tiny_text_model).fit(["good", "bad", "fine"], ["a", "a", "a"])


def test_a_class_with_one_sample_is_named(tiny_text_model):
    X = ["good", "great", "bad", "awful", "meh"]
    with pytest.raises(ValueError, match=r"single sample: 'meh' \(position 4\)"):
        fewshot(tiny_text_model).fit(X, ["pos", "pos", "neg", "neg", "meh"])


def test_three_dimensional_y_is_refused_clearly(tiny_text_model):
    with pytest.raises(ValueError, match=r"2-D label indicator matrix, got y of shape \(4, 2, 1\)"):
        fewshot(tiny_text_model).fit(["a", "b", "c", "d"], np.ones((4, 2, 1), dtype=int))


def test_multilabel_non_binary_column_is_named(tiny_text_model):
    X, y = toy_multilabel(8)
    y[5, 1] = 2
    with pytest.raises(ValueError, match=r"only 0 and 1; column 1 holds 2 \(row 5\)"):
        fewshot(tiny_text_model).fit(X, y)
    with pytest.raises(ValueError, match="multi-label indicator of 0/1"):
        fewshot(tiny_text_model).fit(X, np.array([["a", "b"]] * 8))


def test_multilabel_label_with_too_few_positives_is_named(tiny_text_model):
    X, y = toy_multilabel(8)
    y = np.column_stack([y, np.eye(8, 1, dtype=int)[:, 0]])  # column 2: one positive
    with pytest.raises(ValueError, match=r"1 label column\(s\) have fewer: column 2 \(1\)"):
        fewshot(tiny_text_model).fit(X, y)
    y[:, 2] = 1
    with pytest.raises(ValueError, match="Label column 2 of y is 1 for every sample"):
        fewshot(tiny_text_model).fit(X, y)


def test_multilabel_without_negative_pairs_is_refused(tiny_text_model):
    X = ["a", "b", "c", "d"]
    y = np.array([[1, 0, 1], [1, 1, 0], [0, 1, 1], [1, 1, 1]])  # every two share a label
    with pytest.raises(ValueError, match="needs negative pairs"):
        fewshot(tiny_text_model).fit(X, y)


# -------------------------------------------------------------- save/load
def test_save_and_load_give_the_same_predictions(tiny_text_model, tmp_path):
    X, y = toy_texts(16)
    labels = np.where(y == 1, "yes", "no").astype(object)
    clf = fewshot(tiny_text_model).fit(X, labels)
    clf.save(tmp_path / "saved")
    assert not list(tmp_path.glob("saved/*.pkl")) and (tmp_path / "saved/body").is_dir()
    loaded = FewShotTextClassifier.load(tmp_path / "saved", device="cpu")
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), rtol=1e-5)
    assert loaded.get_params(deep=False).keys() == clf.get_params(deep=False).keys()
    assert loaded.classes_.tolist() == ["no", "yes"] and loaded.n_pairs_ == clf.n_pairs_


@pytest.mark.parametrize("dtype", [np.int64, bool])
def test_multilabel_save_load_and_pickle_give_the_same_predictions(
    tiny_text_model, tmp_path, dtype
):
    X, y = toy_multilabel(16)
    clf = fewshot(tiny_text_model).fit(X, y.astype(dtype))
    clf.save(tmp_path / "saved")
    loaded = FewShotTextClassifier.load(tmp_path / "saved", device="cpu")
    assert loaded.multilabel_ and loaded.predict(X).dtype == np.dtype(dtype)
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(loaded.decision_function(X), clf.decision_function(X))
    np.testing.assert_array_equal(loaded.classes_, clf.classes_)
    assert loaded.head_.estimator.get_params() == clf.head_.estimator.get_params()
    unpickled = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(unpickled.predict(X), clf.predict(X))
    np.testing.assert_array_equal(unpickled.predict_proba(X), clf.predict_proba(X))


def test_save_refuses_a_head_with_object_state(tiny_text_model, tmp_path):
    X, y = toy_texts(16)
    clf = fewshot(tiny_text_model, head=DecisionTreeClassifier(random_state=0)).fit(X, y)
    with pytest.raises(SavedModelError, match="fitted attribute tree_ .* joblib.dump"):
        clf.save(tmp_path / "tree")


def test_load_reports_an_edited_file(tiny_text_model, tmp_path):
    X, y = toy_texts(16)
    fewshot(tiny_text_model).fit(X, y).save(tmp_path / "m")
    with pytest.raises(FileNotFoundError, match="holds no config.json"):
        FewShotTextClassifier.load(tmp_path / "nothing")
    config = json.loads((tmp_path / "m/config.json").read_text())
    config["head"]["class"] = "os.system"
    (tmp_path / "m/config.json").write_text(json.dumps(config))
    with pytest.raises(SavedModelError, match="head.class: not a scikit-learn class"):
        FewShotTextClassifier.load(tmp_path / "m")
    (tmp_path / "m/config.json").write_text("{not json")
    with pytest.raises(SavedModelError, match="whole file: not valid JSON"):
        FewShotTextClassifier.load(tmp_path / "m")
