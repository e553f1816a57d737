"""Checks of what an estimator computes, shared by the contract test and its own test.

Each check takes an unfitted estimator and its data and raises ``AssertionError``
when the estimator breaks the property. ``tests/test_checks_can_fail.py`` runs
them on deliberately broken encoders to show that they can fail.

An encoder given to these checks must use ``cache=None``: with a cache, every
repeated sample is answered from the first call, and a check would compare a
vector with itself.
"""

from __future__ import annotations

import io
import pickle

import joblib
import numpy as np
from sklearn import clone
from sklearn.base import is_classifier, is_regressor

# Other batch shapes (padding, the order of a matrix product) change the last bits.
CLOSE = {"rtol": 1e-5, "atol": 1e-6}


def is_transformer(est) -> bool:
    """A frozen encoder: a transformer and nothing else.

    The fine-tuners transform too (their tuned embeddings) but are predictors
    first: fitted with y, checked by what they predict.
    """
    return hasattr(est, "transform") and not (is_classifier(est) or is_regressor(est))


def fit(est, X, y):
    """Fit as a user would: a frozen encoder needs no y, a predictor does."""
    return est.fit(X) if is_transformer(est) else est.fit(X, y)


def output(est, X):
    """What an estimator computes: features, class probabilities or predictions."""
    if is_transformer(est):
        return est.transform(X)
    if is_classifier(est):
        return est.predict_proba(X)
    return est.predict(X)


def _uncached(est) -> None:
    params = est.get_params()
    assert params.get("cache", None) is None, (
        "a check of what an encoder computes needs cache=None; the cache would answer "
        "the repeated samples with the first call's vectors"
    )


def check_output_is_deterministic(est, X, y) -> np.ndarray:
    """Two fitted clones, and two calls on one of them, give the same numbers."""
    _uncached(est)
    fitted = fit(clone(est), X, y)
    first = output(fitted, X)
    if is_transformer(est):
        assert first.dtype == np.float32
        assert first.shape == (len(X), fitted.n_features_out_)
    np.testing.assert_array_equal(
        output(fit(clone(est), X, y), X), first, err_msg="a second fitted clone differs"
    )
    np.testing.assert_array_equal(output(fitted, X), first, err_msg="a second call differs")
    return first


def check_rows_depend_on_their_sample_only(est, X, y) -> None:
    """Row i is the output for sample i, whatever else is in the call.

    A reversed subset gives the same rows reversed, and a sample alone gives its
    row of the full call.
    """
    _uncached(est)
    fitted = fit(clone(est), X, y)
    first = output(fitted, X)
    subset = output(fitted, X[:7][::-1])
    np.testing.assert_allclose(
        subset, first[:7][::-1], **CLOSE, err_msg="a reversed subset gives other rows"
    )
    for i in (0, 5, len(X) - 1):
        np.testing.assert_allclose(
            output(fitted, X[i : i + 1])[0],
            first[i],
            **CLOSE,
            err_msg=f"sample {i} alone gives another row than in the full call",
        )


def check_batch_size_does_not_change_the_output(est, X, y) -> None:
    """``batch_size`` of a frozen encoder bounds memory; it is not an output parameter."""
    _uncached(est)
    first = clone(est).fit(X).transform(X)
    for batch_size in (1, 3, len(X)):
        other = clone(est).set_params(batch_size=batch_size).fit(X).transform(X)
        np.testing.assert_allclose(
            other, first, **CLOSE, err_msg=f"batch_size={batch_size} gives other rows"
        )


def pickle_round_trip(est, dumper: str):
    """(the loaded copy, the size of the pickle in bytes)."""
    buffer = io.BytesIO()
    if dumper == "pickle":
        pickle.dump(est, buffer)
    else:
        joblib.dump(est, buffer)
    size = buffer.tell()
    buffer.seek(0)
    loaded = pickle.load(buffer) if dumper == "pickle" else joblib.load(buffer)
    return loaded, size


def check_pickled_copy_gives_the_same_output(est, X, y, dumper: str = "pickle"):
    """A fitted estimator and its pickled copy compute the same numbers."""
    _uncached(est)
    fitted = fit(clone(est), X, y)
    expected = output(fitted, X)
    loaded, size = pickle_round_trip(fitted, dumper)
    assert loaded.get_params() == fitted.get_params()
    assert loaded.model_source_ == fitted.model_source_
    np.testing.assert_array_equal(
        output(loaded, X), expected, err_msg=f"the {dumper} copy computes other numbers"
    )
    return loaded, size
