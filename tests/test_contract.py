"""The sklearn contract, checked on every public estimator of sktransfer.

Estimators are discovered from ``sktransfer.__all__``; each needs an entry in
``case`` (a tiny-model instance and matching data), so a new public estimator
fails this module until it is added here.

Common checks run on every estimator; transformer checks (feature names,
``set_output``, ColumnTransformer) on the frozen encoders; predictor checks
(``predict`` / ``predict_proba`` shapes, string classes, ``score``) on the
fine-tuning estimators.
"""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest
from sklearn import clone
from sklearn.base import BaseEstimator, is_classifier, is_regressor
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.utils import estimator_checks

import sktransfer
from tests.conftest import image_samples, text_samples
from tests.contract_checks import (
    check_batch_size_does_not_change_the_output,
    check_output_is_deterministic,
    check_pickled_copy_gives_the_same_output,
    check_rows_depend_on_their_sample_only,
    fit,
    is_transformer,
    output,
    pickle_round_trip,
)

TRANSFORMERS = ("TextEncoder", "ImageEncoder")


def public_estimators():
    found = []
    for name in sktransfer.__all__:
        obj = getattr(sktransfer, name)
        if inspect.isclass(obj) and issubclass(obj, BaseEstimator):
            found.append(name)
    return found


# Fine-tuning cases: tiny bodies, 2 epochs, 16 samples -- each fit well under a second.
_FINETUNE = {"epochs": 2, "batch_size": 8, "learning_rate": 1e-2, "random_state": 0}


def _finetune_targets(name, y):
    if name.endswith("Classifier"):
        return np.where(y == 1, "pos", "neg")
    return y * 2.0 - 1.0 + np.linspace(0, 0.5, len(y))


@pytest.fixture
def case(request, tiny_text_model, tiny_image_weights):
    """(estimator, X, y, a parameter to vary in a grid) for one public estimator.

    The encoders run without the embedding cache: these checks are about what the
    model computes, and a cache would answer every repeated sample with the first
    call's vector. ``test_cache_gives_the_uncached_output`` checks the cache.
    """
    name = request.param
    if name == "TextEncoder":
        X, y = text_samples()
        est = sktransfer.TextEncoder(tiny_text_model, batch_size=5, progress=False, cache=None)
        return est, X, y, {"batch_size": [4, 7]}
    if name == "ImageEncoder":
        X, y = image_samples()
        est = sktransfer.ImageEncoder(
            "test_efficientnet",
            weights=tiny_image_weights,
            batch_size=5,
            image_size=32,
            progress=False,
            cache=None,
        )
        return est, X, y, {"batch_size": [4, 7]}
    if name in ("TextClassifier", "TextRegressor"):
        X, y = text_samples(16)
        est = getattr(sktransfer, name)(tiny_text_model, **_FINETUNE)
        return est, X, _finetune_targets(name, y), {"trainable_blocks": [0, 1]}
    if name == "FewShotTextClassifier":
        X, y = text_samples(16)
        est = sktransfer.FewShotTextClassifier(
            tiny_text_model, batch_size=8, learning_rate=1e-3, pairs_per_sample=4, random_state=0
        )
        return est, X, _finetune_targets(name, y), {"loss": ["cosine", "contrastive"]}
    if name in ("ImageClassifier", "ImageRegressor"):
        X, y = image_samples(16, size=24)
        est = getattr(sktransfer, name)(
            "test_efficientnet", weights=tiny_image_weights, image_size=32, **_FINETUNE
        )
        return est, X, _finetune_targets(name, y), {"trainable_blocks": [0, 1]}
    pytest.fail(f"{name} is public but has no case in tests/test_contract.py; add one.")


ESTIMATORS = public_estimators()
PREDICTORS = [name for name in ESTIMATORS if name not in TRANSFORMERS]
parametrize = pytest.mark.parametrize("case", ESTIMATORS, indirect=True)
parametrize_transformers = pytest.mark.parametrize(
    "case", [n for n in ESTIMATORS if n in TRANSFORMERS], indirect=True
)
parametrize_predictors = pytest.mark.parametrize("case", PREDICTORS, indirect=True)


def test_discovery_finds_the_encoders():
    assert {"TextEncoder", "ImageEncoder"} <= set(ESTIMATORS)


def test_discovery_finds_the_fine_tuners():
    expected = {"TextClassifier", "TextRegressor", "ImageClassifier", "ImageRegressor"}
    assert expected | {"FewShotTextClassifier"} <= set(PREDICTORS)


# sklearn's checks that need no tabular data (parametrize_with_checks would
# skip these estimators because they do not take 2-D numeric input).
DATA_FREE_CHECKS = [
    "check_no_attributes_set_in_init",
    "check_parameters_default_constructible",
    "check_get_params_invariance",
    "check_set_params",
    "check_estimator_cloneable",
    "check_estimator_repr",
    "check_estimator_tags_renamed",
    "check_valid_tag_types",
    "check_mixin_order",
    "check_do_not_raise_errors_in_init_or_set_params",
]


# ------------------------------------------------------------- every estimator
@parametrize
@pytest.mark.parametrize("check", DATA_FREE_CHECKS)
def test_sklearn_data_free_checks(case, check):
    est = case[0]
    getattr(estimator_checks, check)(type(est).__name__, est)


@parametrize
def test_default_construction_loads_nothing(case):
    est = type(case[0])()
    assert not [k for k in vars(est) if k.endswith("_") or k.startswith("_")]
    with pytest.raises(NotFittedError, match="not fitted"):
        output(est, case[1][:2])


@parametrize
def test_clone_and_params_round_trip(case):
    est, X, y, _ = case
    params = est.get_params()
    cloned = clone(est)
    assert cloned.get_params() == params
    assert type(est)().set_params(**params).get_params() == params
    fitted = fit(clone(est), X, y)
    assert clone(fitted).get_params() == params
    with pytest.raises(NotFittedError, match="not fitted"):
        output(clone(fitted), X)
    assert fitted.get_params() == params, "fit must not change parameters"
    assert type(est).__name__ in repr(est)


@parametrize
def test_unfitted_estimator_raises(case):
    est, X, _, _ = case
    with pytest.raises(NotFittedError, match="not fitted"):
        output(est, X)
    if is_transformer(est):
        with pytest.raises(NotFittedError, match="not fitted"):
            est.get_feature_names_out()
    else:
        with pytest.raises(NotFittedError, match="not fitted"):
            est.predict(X)


@parametrize
def test_fit_returns_self_and_fitted_attributes(case):
    est, X, y, _ = case
    assert fit(est, X, y) is est
    assert est.n_features_in_ == 1
    if is_transformer(est):
        assert est.n_features_out_ > 0
    assert isinstance(est.device_, str) and isinstance(est.model_source_, str)


@parametrize
def test_output_is_deterministic(case):
    est, X, y, _ = case
    check_output_is_deterministic(est, X, y)


@parametrize
def test_rows_depend_on_their_sample_only(case):
    est, X, y, _ = case
    check_rows_depend_on_their_sample_only(est, X, y)


@parametrize
def test_empty_input_gives_empty_array(case):
    est, X, y, _ = case
    fit(est, X, y)
    if is_transformer(est):
        out = est.transform([])
        assert out.shape == (0, est.n_features_out_)
        assert out.dtype == np.float32
        return
    assert est.predict([]).shape == (0,)
    if is_classifier(est):
        assert est.predict_proba([]).shape == (0, len(est.classes_))


@parametrize
@pytest.mark.parametrize("dumper", ["pickle", "joblib"])
def test_pickle_round_trip_of_a_fitted_estimator(case, dumper):
    est, X, y, _ = case
    _, size = check_pickled_copy_gives_the_same_output(est, X, y, dumper)
    if is_transformer(est):
        # A frozen encoder pickles its reference, not its weights.
        assert size < 20_000, f"pickle is {size} bytes: weights were pickled"


@parametrize
@pytest.mark.parametrize("dumper", ["pickle", "joblib"])
def test_pickle_round_trip_of_an_unfitted_estimator(case, dumper):
    est, X, _, _ = case
    loaded, size = pickle_round_trip(est, dumper)
    assert size < 20_000, f"pickle is {size} bytes"
    assert loaded.get_params() == est.get_params()
    with pytest.raises(NotFittedError, match="not fitted"):
        output(loaded, X)


@parametrize
def test_in_pipeline_and_grid_search(case):
    est, X, y, grid = case
    if is_transformer(est):
        pipe = Pipeline([("enc", est), ("clf", LogisticRegression(max_iter=500))])
        pipe.fit(X, y)
        # The pipeline is the encoder's features fed to the head, nothing else.
        features = clone(est).fit(X).transform(X)
        head = LogisticRegression(max_iter=500).fit(features, y)
        np.testing.assert_allclose(pipe.predict_proba(X), head.predict_proba(features))
        param_grid = {"clf__C": [0.1, 10.0]}
        param_grid.update({f"enc__{k}": v for k, v in grid.items()})
        search = GridSearchCV(pipe, param_grid, cv=2).fit(X, y)
        assert len(search.cv_results_["params"]) == 4
        assert search.best_estimator_.named_steps["enc"].n_features_out_ == est.n_features_out_
        return
    # A fine-tuning estimator is the last step of a pipeline.
    pipe = Pipeline([("identity", FunctionTransformer()), ("model", est)])
    pipe.fit(X, y)
    np.testing.assert_allclose(output(pipe, X), output(fit(clone(est), X, y), X), rtol=1e-5)
    param_grid = {f"model__{k}": v for k, v in grid.items()}
    search = GridSearchCV(pipe, param_grid, cv=2).fit(X, y)
    assert len(search.cv_results_["params"]) == 2
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_estimator_.predict(X[:3]).shape == (3,)


@parametrize
def test_bad_parameter_is_reported_at_fit(case):
    est, X, y, _ = case
    with pytest.raises(ValueError, match="batch_size"):
        fit(clone(est).set_params(batch_size=0), X, y)
    with pytest.raises(ValueError, match="device"):
        fit(clone(est).set_params(device="no-such-device"), X, y)


# ---------------------------------------------------------------- transformers
@parametrize_transformers
def test_batch_size_does_not_change_the_output(case):
    est, X, y, _ = case
    check_batch_size_does_not_change_the_output(est, X, y)


@parametrize_transformers
def test_cache_gives_the_uncached_output(case):
    """The default cache, cold then warm, returns exactly what the model computes."""
    est, X, _, _ = case
    plain = est.fit(X).transform(X)
    cached = clone(est).set_params(cache="memory").fit(X)
    cold = cached.transform(X)
    before = cached.cache_info()
    warm = cached.transform(X[::-1])[::-1]
    after = cached.cache_info()
    assert after.hits - before.hits == len(X) and after.misses == before.misses
    np.testing.assert_array_equal(cold, plain)
    np.testing.assert_array_equal(warm, plain)


@parametrize_transformers
def test_feature_names_and_pandas_output(case):
    est, X, _, _ = case
    est.fit(X)
    names = est.get_feature_names_out()
    prefix = type(est).__name__.lower()
    assert list(names) == [f"{prefix}{i}" for i in range(est.n_features_out_)]
    series = pd.Series(X, index=np.arange(100, 100 + len(X)), name="col")
    est.set_output(transform="pandas")
    frame = est.transform(series)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == list(names)
    assert list(frame.index) == list(series.index)
    est.set_output(transform="default")
    np.testing.assert_allclose(frame.to_numpy(), est.transform(X), rtol=1e-5, atol=1e-6)


@parametrize_transformers
def test_one_column_dataframe_records_its_name(case):
    est, X, _, _ = case
    df = pd.DataFrame({"item": X})
    est.fit(df)
    assert list(est.feature_names_in_) == ["item"]
    # Outputs are named after the input column (as skrub names them).
    assert list(est.get_feature_names_out())[:2] == ["item_0", "item_1"]
    assert list(est.get_feature_names_out(["item"])) == list(est.get_feature_names_out())
    assert list(est.fit(pd.Series(X, name="review")).get_feature_names_out())[:1] == ["review_0"]
    assert not hasattr(est, "feature_names_in_")
    assert list(est.fit(X).get_feature_names_out())[:1] == [f"{type(est).__name__.lower()}0"]
    est.fit(df)
    with pytest.raises(ValueError, match="fitted on column"):
        est.transform(pd.DataFrame({"other": X}))
    with pytest.raises(ValueError, match="input_features"):
        est.get_feature_names_out(["other"])


@parametrize_transformers
def test_in_column_transformer_with_numeric_columns(case):
    est, X, y, _ = case
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"item": X, "num1": rng.normal(size=len(X)), "num2": np.arange(len(X))})
    ct = ColumnTransformer([("enc", est, "item"), ("num", StandardScaler(), ["num1", "num2"])])
    out = ct.fit_transform(df, y)
    width = ct.named_transformers_["enc"].n_features_out_
    assert out.shape == (len(X), width + 2)
    names = ct.get_feature_names_out()
    assert names[0] == "enc__item_0"  # after the column, not the class
    assert list(names[-2:]) == ["num__num1", "num__num2"]
    np.testing.assert_allclose(out[:, :width], clone(est).fit(X).transform(X), rtol=1e-5, atol=1e-6)
    model = Pipeline([("ct", ct), ("clf", LogisticRegression(max_iter=500))]).fit(df, y)
    assert model.score(df, y) > 0.5


# ------------------------------------------------------------------ predictors
@parametrize_predictors
def test_predict_shapes_classes_and_score(case):
    est, X, y, _ = case
    est.fit(X, y)
    predictions = est.predict(X)
    assert predictions.shape == (len(X),)
    score = est.score(X, y)
    assert np.isfinite(score)
    if is_classifier(est):
        assert list(est.classes_) == ["neg", "pos"]
        assert set(predictions) <= {"neg", "pos"}
        proba = est.predict_proba(X)
        assert proba.shape == (len(X), 2)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
        np.testing.assert_array_equal(predictions, est.classes_[proba.argmax(axis=1)])
        decision = est.decision_function(X)
        assert decision.shape == (len(X),)
        np.testing.assert_array_equal(decision > 0, predictions == "pos")
        assert 0.0 <= score <= 1.0
    else:
        assert is_regressor(est)
        assert predictions.dtype == np.float64


@parametrize_predictors
def test_cross_val_score_refits_from_scratch(case):
    est, X, y, _ = case
    scores = cross_val_score(est, X, y, cv=2)
    assert scores.shape == (2,) and np.isfinite(scores).all()
    # The estimator passed in stays unfitted; cross-validation fitted clones.
    with pytest.raises(NotFittedError, match="not fitted"):
        est.predict(X)


parametrize_tuned_transformers = pytest.mark.parametrize(
    "case", [n for n in PREDICTORS if hasattr(getattr(sktransfer, n), "transform")], indirect=True
)


def test_the_four_fine_tuners_transform():
    expected = {"TextClassifier", "TextRegressor", "ImageClassifier", "ImageRegressor"}
    assert expected <= {n for n in PREDICTORS if hasattr(getattr(sktransfer, n), "transform")}


@parametrize_tuned_transformers
def test_fine_tuner_transform_gives_the_heads_input(case):
    est, X, y, _ = case
    est.fit(X, y)
    assert is_classifier(est) or is_regressor(est)  # still a predictor first
    features = est.transform(X)
    assert features.dtype == np.float32 and features.shape == (len(X), est.n_features_out_)
    head = est._network().head
    logits = features @ head.weight.numpy().T + head.bias.numpy()
    np.testing.assert_allclose(logits, est._raw_outputs(X), rtol=1e-4, atol=1e-5)
    assert est.transform([]).shape == (0, est.n_features_out_)
    names = est.get_feature_names_out()
    assert list(names[:2]) == [f"{type(est).__name__.lower()}{i}" for i in (0, 1)]
    assert list(est.get_feature_names_out(["review"])[:1]) == ["review_0"]
    frame = clone(est).set_output(transform="pandas").fit(X, y).transform(pd.Series(X))
    assert list(frame.columns) == list(names)
    np.testing.assert_allclose(frame.to_numpy(), features, rtol=1e-5, atol=1e-6)
    restored, _ = pickle_round_trip(est, "pickle")
    assert restored.n_features_out_ == est.n_features_out_
    np.testing.assert_allclose(restored.transform(X), features, rtol=1e-5, atol=1e-6)


@parametrize_tuned_transformers
def test_fine_tuner_feeds_another_model_in_a_pipeline(case):
    est, X, y, _ = case
    head = LogisticRegression(max_iter=500) if is_classifier(est) else Ridge()
    pipe = Pipeline([("tuned", est), ("head", head)]).fit(X, y)
    features = clone(est).fit(X, y).transform(X)
    expected = clone(head).fit(features, y).predict(features)
    np.testing.assert_array_equal(pipe.predict(X), expected)
