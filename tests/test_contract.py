"""The sklearn contract, checked on every public estimator of sktransfer.

Estimators are discovered from ``sktransfer.__all__``; each needs an entry in
``CASES`` (a tiny-model instance and matching data), so a new public estimator
fails this module until it is added here.
"""

from __future__ import annotations

import inspect
import io
import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn import clone
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import estimator_checks

import sktransfer
from tests.conftest import image_samples, text_samples


def public_estimators():
    found = []
    for name in sktransfer.__all__:
        obj = getattr(sktransfer, name)
        if inspect.isclass(obj) and issubclass(obj, BaseEstimator):
            found.append(name)
    return found


@pytest.fixture
def case(request, tiny_text_model, tiny_image_weights):
    """(estimator, X, y, a parameter to vary in a grid) for one public estimator."""
    name = request.param
    if name == "TextEncoder":
        X, y = text_samples()
        est = sktransfer.TextEncoder(tiny_text_model, batch_size=5, progress=False)
        return est, X, y, {"batch_size": [4, 7]}
    if name == "ImageEncoder":
        X, y = image_samples()
        est = sktransfer.ImageEncoder(
            "test_efficientnet",
            weights=tiny_image_weights,
            batch_size=5,
            image_size=32,
            progress=False,
        )
        return est, X, y, {"batch_size": [4, 7]}
    pytest.fail(f"{name} is public but has no case in tests/test_contract.py; add one.")


ESTIMATORS = public_estimators()
parametrize = pytest.mark.parametrize("case", ESTIMATORS, indirect=True)


def test_discovery_finds_the_encoders():
    assert {"TextEncoder", "ImageEncoder"} <= set(ESTIMATORS)


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


@parametrize
@pytest.mark.parametrize("check", DATA_FREE_CHECKS)
def test_sklearn_data_free_checks(case, check):
    est = case[0]
    getattr(estimator_checks, check)(type(est).__name__, est)


@parametrize
def test_default_construction_loads_nothing(case):
    est = type(case[0])()
    assert not [k for k in vars(est) if k.endswith("_") or k.startswith("_")]
    with pytest.raises(NotFittedError):
        est.transform(case[1][:2])


@parametrize
def test_clone_and_params_round_trip(case):
    est, X, _, _ = case
    params = est.get_params()
    cloned = clone(est)
    assert cloned.get_params() == params
    assert type(cloned)().set_params(**params).get_params() == params
    fitted = clone(est).fit(X)
    assert clone(fitted).get_params() == params
    with pytest.raises(NotFittedError):
        clone(fitted).transform(X)
    assert fitted.get_params() == params, "fit must not change parameters"
    assert type(est).__name__ in repr(est)


@parametrize
def test_unfitted_transform_raises(case):
    est, X, _, _ = case
    with pytest.raises(NotFittedError, match="not fitted"):
        est.transform(X)
    with pytest.raises(NotFittedError):
        est.get_feature_names_out()


@parametrize
def test_fit_returns_self_and_fitted_attributes(case):
    est, X, _, _ = case
    assert est.fit(X) is est
    assert est.n_features_in_ == 1
    assert est.n_features_out_ > 0
    assert isinstance(est.device_, str) and isinstance(est.model_source_, str)


@parametrize
def test_transform_is_deterministic_float32_and_aligned(case):
    est, X, _, _ = case
    fitted = clone(est).fit(X)
    first = fitted.transform(X)
    second = clone(est).fit(X).transform(X)
    assert first.dtype == np.float32
    assert first.shape == (len(X), fitted.n_features_out_)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(fitted.transform(X), first)
    # Row i depends on sample i only: encoding a reversed subset gives the same rows.
    subset = fitted.transform(X[:7][::-1])
    np.testing.assert_allclose(subset, first[:7][::-1], rtol=1e-5, atol=1e-6)
    # Batch size is not an output-affecting parameter.
    other = clone(est).set_params(batch_size=3).fit(X).transform(X)
    np.testing.assert_allclose(other, first, rtol=1e-5, atol=1e-6)


@parametrize
def test_empty_input_gives_empty_array(case):
    est, X, _, _ = case
    est.fit(X)
    out = est.transform([])
    assert out.shape == (0, est.n_features_out_)
    assert out.dtype == np.float32


@parametrize
@pytest.mark.parametrize("fitted", [False, True])
@pytest.mark.parametrize("dumper", ["pickle", "joblib"])
def test_pickle_round_trip(case, fitted, dumper):
    est, X, _, _ = case
    if fitted:
        est.fit(X)
        expected = est.transform(X)
    buffer = io.BytesIO()
    if dumper == "pickle":
        pickle.dump(est, buffer)
        size = buffer.tell()
        buffer.seek(0)
        loaded = pickle.load(buffer)
    else:
        joblib.dump(est, buffer)
        size = buffer.tell()
        buffer.seek(0)
        loaded = joblib.load(buffer)
    # A frozen encoder pickles its reference, not its weights.
    assert size < 20_000, f"pickle is {size} bytes: weights were pickled"
    assert loaded.get_params() == est.get_params()
    if fitted:
        np.testing.assert_array_equal(loaded.transform(X), expected)
        assert loaded.model_source_ == est.model_source_
    else:
        with pytest.raises(NotFittedError):
            loaded.transform(X)


@parametrize
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


@parametrize
def test_one_column_dataframe_records_its_name(case):
    est, X, _, _ = case
    df = pd.DataFrame({"item": X})
    est.fit(df)
    assert list(est.feature_names_in_) == ["item"]
    assert list(est.get_feature_names_out(["item"]))[:1] == [f"{type(est).__name__.lower()}0"]
    with pytest.raises(ValueError, match="fitted on column"):
        est.transform(pd.DataFrame({"other": X}))
    with pytest.raises(ValueError, match="input_features"):
        est.get_feature_names_out(["other"])


@parametrize
def test_in_pipeline_and_grid_search(case):
    est, X, y, grid = case
    pipe = Pipeline([("enc", est), ("clf", LogisticRegression(max_iter=500))])
    pipe.fit(X, y)
    assert pipe.predict(X).shape == (len(X),)
    param_grid = {"clf__C": [0.1, 10.0]}
    param_grid.update({f"enc__{k}": v for k, v in grid.items()})
    search = GridSearchCV(pipe, param_grid, cv=2).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert search.best_estimator_.named_steps["enc"].n_features_out_ == est.n_features_out_


@parametrize
def test_in_column_transformer_with_numeric_columns(case):
    est, X, y, _ = case
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"item": X, "num1": rng.normal(size=len(X)), "num2": np.arange(len(X))})
    ct = ColumnTransformer([("enc", est, "item"), ("num", StandardScaler(), ["num1", "num2"])])
    out = ct.fit_transform(df, y)
    width = ct.named_transformers_["enc"].n_features_out_
    assert out.shape == (len(X), width + 2)
    names = ct.get_feature_names_out()
    assert names[0] == f"enc__{type(est).__name__.lower()}0"
    assert list(names[-2:]) == ["num__num1", "num__num2"]
    np.testing.assert_allclose(out[:, :width], clone(est).fit(X).transform(X), rtol=1e-5, atol=1e-6)
    model = Pipeline([("ct", ct), ("clf", LogisticRegression(max_iter=500))]).fit(df, y)
    assert model.score(df, y) > 0.5


@parametrize
def test_bad_parameter_is_reported_at_fit(case):
    est, X, _, _ = case
    with pytest.raises(ValueError, match="batch_size"):
        clone(est).set_params(batch_size=0).fit(X)
    with pytest.raises(ValueError, match="device"):
        clone(est).set_params(device="no-such-device").fit(X)
