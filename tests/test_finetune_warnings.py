"""Fine-tuning that quietly fails: a classifier that learned nothing says so.

"Learned nothing" is judged on what training measured: the validation score of
the kept epoch (early stopping), else the training loss of the last epoch,
against the best constant prediction on the same samples.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import cross_val_score

from sktransfer import TextClassifier
from sktransfer.exceptions import UnderfitWarning
from tests.finetune_helpers import toy_texts

# One epoch at a learning rate of 1e-8: the head stays where it was drawn.
CANNOT_LEARN = {"epochs": 1, "learning_rate": 1e-8, "trainable_blocks": 0, "batch_size": 8}
# The settings the other fine-tuning tests learn the toy vocabularies with.
LEARNS = {"epochs": 4, "learning_rate": 1e-2, "trainable_blocks": 1, "batch_size": 8}


def imbalanced_texts(n_major: int = 30, n_minor: int = 10):
    """Toy texts, three of class 0 for each of class 1 (a majority baseline of 0.75)."""
    X, y = toy_texts(2 * n_major)
    keep = np.sort(np.r_[np.flatnonzero(y == 0)[:n_major], np.flatnonzero(y == 1)[:n_minor]])
    return [X[i] for i in keep], y[keep]


def underfit_warnings(record) -> list:
    return [w for w in record if issubclass(w.category, UnderfitWarning)]


@pytest.mark.parametrize("random_state", [0, 1, 2])
def test_a_classifier_that_learned_nothing_warns(tiny_text_model, random_state):
    X, y = imbalanced_texts()
    clf = TextClassifier(tiny_text_model, random_state=random_state, **CANNOT_LEARN)
    with pytest.warns(UnderfitWarning) as record:
        clf.fit(X, y)
    (warning,) = underfit_warnings(record)
    message = str(warning.message)
    assert message.startswith("TextClassifier did not learn: on its training data")
    assert "no lower than that of predicting the class frequencies (0.562)" in message
    assert "epochs (now 1)" in message and "learning_rate (now 1e-08)" in message
    assert "make_pipeline(TextEncoder(), LogisticRegression())" in message
    assert warning.filename == __file__  # points at the caller's fit


@pytest.mark.parametrize(
    ("metric", "verdict"),
    [
        ("accuracy", r"accuracy \S+ is no better than always predicting the class 0 \(0\.\d+\)"),
        ("log_loss", r"log-loss \S+ is no lower than that of predicting the class frequencies"),
    ],
)
def test_the_validation_split_is_judged_when_there_is_one(tiny_text_model, metric, verdict):
    X, y = imbalanced_texts()
    clf = TextClassifier(
        tiny_text_model,
        early_stopping=True,
        validation_fraction=0.25,
        validation_metric=metric,
        random_state=0,
        **CANNOT_LEARN,
    )
    with pytest.warns(UnderfitWarning, match=r"on its validation split \(10 samples\), its ") as r:
        clf.fit(X, y)
    assert len(underfit_warnings(r)) == 1
    assert re.search(verdict, str(underfit_warnings(r)[0].message))


def test_cross_validation_warns_in_every_fold(tiny_text_model):
    """The reported case: cross-validated scores at the majority baseline, now with a reason."""
    X, y = imbalanced_texts()
    clf = TextClassifier(tiny_text_model, random_state=0, **CANNOT_LEARN)
    with pytest.warns(ConvergenceWarning) as record:  # sklearn's filters catch it
        cross_val_score(clf, X, y, cv=2)
    assert len(underfit_warnings(record)) == 2


@pytest.mark.parametrize(
    "params",
    [{}, {"early_stopping": True, "validation_fraction": 0.25}],
    ids=["training-loss", "validation-accuracy"],
)
def test_a_classifier_that_learns_does_not_warn(tiny_text_model, params):
    X, y = toy_texts(40)
    clf = TextClassifier(tiny_text_model, random_state=0, **LEARNS, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnderfitWarning)
        clf.fit(X, y)
    assert clf.score(*toy_texts(32, seed=1)) >= 0.7  # held out: above the 0.5 baseline


def test_balanced_class_weights_move_the_baseline(tiny_text_model):
    """With class_weight='balanced' the baseline is 0.5, not the majority's share."""
    X, y = imbalanced_texts()
    clf = TextClassifier(tiny_text_model, class_weight="balanced", random_state=0, **LEARNS)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnderfitWarning)
        clf.fit(X, y)
    with pytest.warns(UnderfitWarning, match=r"class frequencies \(0\.693\)"):
        clf.set_params(**CANNOT_LEARN).fit(X, y)


def test_a_log_loss_below_the_baseline_with_one_predicted_class_warns(tiny_text_model):
    """Probabilities that lean the right way but never cross over: one class predicted."""
    import torch

    from sktransfer.finetune._loop import Split

    X, y = imbalanced_texts()
    clf = TextClassifier(
        tiny_text_model,
        early_stopping=True,
        validation_fraction=0.25,
        validation_metric="log_loss",
        random_state=0,
        **LEARNS,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnderfitWarning)
        clf.fit(X, y)
    # A validation split of 6 + 2 samples (baseline log-loss 0.562) on which the kept
    # model's logits favour class 0 everywhere, less so where the class is 1.
    rows = np.r_[np.flatnonzero(y == 0)[:6], np.flatnonzero(y == 1)[:2]]
    logits = np.where(y[rows] == 1, -0.2, -3.0)
    clf._raw_outputs = lambda items: np.column_stack([np.zeros(len(items)), logits])
    valid = Split(
        items=[X[i] for i in rows],
        targets=torch.as_tensor(y[rows]),
        weights=torch.ones(len(rows)),
        y=y[rows],
    )
    clf.history_[clf.best_epoch_ - 1]["valid_score"] = 0.3  # below the baseline
    with pytest.warns(UnderfitWarning, match=r"but it predicts the class 0 for every sample"):
        clf._warn_if_not_learned(valid, valid)
