"""Fine-tuning estimators as a user meets them: learning, classes and targets, input
errors, reproducibility, save/load, pickling across devices, history and plots, and
scikit-learn's model selection.

The sklearn contract common to every estimator (clone, params, pickling of CPU
fits, empty input) lives in ``test_contract.py``; the training practices in
``test_finetune_practices.py``.
"""

from __future__ import annotations

import json
import pickle
import random
import warnings

import numpy as np
import pytest
import torch
from sklearn import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

import sktransfer.finetune
from sktransfer.exceptions import InvalidInputError
from sktransfer.finetune import (
    ImageClassifier,
    ImageRegressor,
    TextClassifier,
    TextRegressor,
    plot_history,
)
from tests.finetune_helpers import (
    brightness_images,
    image_estimator,
    one_torch_thread,  # noqa: F401  (an autouse fixture)
    text_estimator,
    toy_images,
    toy_texts,
)


@pytest.fixture
def make(tiny_text_model, tiny_image_weights):
    """``make(cls, **params)``: a fast fine-tuning estimator of any of the four classes."""

    def build(cls, **params):
        if cls in (TextClassifier, TextRegressor):
            return text_estimator(cls, tiny_text_model, **params)
        return image_estimator(cls, tiny_image_weights, **params)

    return build


def toy_data(cls, n, seed=0):
    """Separable toy data for ``cls``: (X, y) with int labels or float targets."""
    if cls in (TextClassifier, TextRegressor):
        X, y = toy_texts(n, seed)
    else:
        X, y = toy_images(n, seed)
    return (X, y) if cls in (TextClassifier, ImageClassifier) else (X, y * 2.0 - 1.0)


ALL = [TextClassifier, TextRegressor, ImageClassifier, ImageRegressor]


# ------------------------------------------------------------------- learning
def test_text_classifier_learns_two_vocabularies(make):
    X, y = toy_texts(32, seed=0)
    X_new, y_new = toy_texts(32, seed=1)
    clf = make(TextClassifier, trainable_blocks=1, epochs=4).fit(X, y)
    assert clf.score(X_new, y_new) >= 0.8


def test_image_classifier_tells_bright_from_dark(make):
    X, y = toy_images(24, seed=0)
    X_new, y_new = toy_images(24, seed=1)
    # Head only: with a few batches of 8, BatchNorm statistics of trained blocks barely settle.
    clf = make(ImageClassifier, trainable_blocks=0, epochs=5, learning_rate=5e-2).fit(X, y)
    assert clf.score(X_new, y_new) >= 0.9


def test_text_regressor_learns_a_one_dimensional_target(make):
    X, labels = toy_texts(32, seed=0)
    X_new, labels_new = toy_texts(32, seed=1)
    y = np.where(labels == 1, 2.0, -2.0) + 10.0
    reg = make(TextRegressor, trainable_blocks="all", epochs=4, learning_rate=3e-2).fit(X, y)
    predicted = reg.predict(X_new)
    assert predicted.shape == (32,) and predicted.dtype == np.float64
    # Predictions are on the scale of y (the standardisation is undone).
    assert 7.0 < predicted.mean() < 13.0
    assert predicted[labels_new == 1].mean() > predicted[labels_new == 0].mean() + 2.0


def test_image_regressor_learns_several_outputs(make):
    X, brightness = brightness_images(32, seed=0)
    X_new, brightness_new = brightness_images(32, seed=1)
    y = np.column_stack([brightness, 100.0 - 50.0 * brightness])
    reg = make(ImageRegressor, trainable_blocks=0, epochs=6, learning_rate=3e-2).fit(X, y)
    assert reg.n_outputs_ == 2
    predicted = reg.predict(X_new)
    assert predicted.shape == (32, 2)
    assert np.corrcoef(predicted[:, 0], brightness_new)[0, 1] > 0.9
    assert np.corrcoef(predicted[:, 1], brightness_new)[0, 1] < -0.9
    one_column = clone(reg).fit(X, y[:, :1])
    assert one_column.predict(X_new).shape == (32, 1)
    assert clone(reg).fit(X, brightness).predict(X_new).shape == (32,)


# ------------------------------------------------------------ classes and outputs
@pytest.mark.parametrize(
    ("cls", "labels"),
    [
        (TextClassifier, np.array(["spam", "ham"])),
        (TextClassifier, np.array([7, -3])),
        (TextClassifier, np.array(["b", "c", "a"])),
        (TextClassifier, np.array([10, 0, 5])),
        (ImageClassifier, np.array([True, False])),
        (ImageClassifier, np.array(["b", "c", "a"])),
    ],
    ids=["text-str-2", "text-int-2", "text-str-3", "text-int-3", "image-bool-2", "image-str-3"],
)
def test_classes_probabilities_and_decision_function(make, cls, labels):
    n_classes = len(labels)
    if cls is TextClassifier:
        X, codes = toy_texts(12, n_classes=n_classes)
    else:
        X, _ = toy_images(12)
        codes = np.arange(12) % n_classes
    y = labels[codes]
    clf = make(cls, trainable_blocks=1, epochs=1).fit(X, y)
    np.testing.assert_array_equal(clf.classes_, np.sort(labels))
    assert clf.classes_.dtype == y.dtype
    predicted = clf.predict(X)
    assert predicted.dtype == y.dtype and set(predicted) <= set(labels)
    proba = clf.predict_proba(X)
    assert proba.shape == (12, n_classes)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(predicted, clf.classes_[proba.argmax(axis=1)])
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X)), proba, rtol=1e-5)
    decision = clf.decision_function(X)
    if n_classes == 2:
        assert decision.shape == (12,)
        np.testing.assert_array_equal(decision > 0, predicted == clf.classes_[1])
    else:
        assert decision.shape == (12, n_classes)
        np.testing.assert_array_equal(clf.classes_[decision.argmax(axis=1)], predicted)


def test_column_vector_y_is_accepted_by_a_classifier(make):
    X, y = toy_texts(8)
    clf = make(TextClassifier, epochs=1).fit(X, y.reshape(-1, 1))
    np.testing.assert_array_equal(clf.classes_, [0, 1])


# ----------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("cls", "y", "match"),
    [
        (TextClassifier, ["a"] * 6, "at least 2 classes.*'a'"),
        (TextClassifier, np.array(["a", None, "b", "a", "b", None], dtype=object), "1, 5"),
        (TextRegressor, [1.0, np.nan, 2.0, 3.0, 4.0, 5.0], r"missing values \(NaN/None\)"),
        (TextClassifier, [0, 1, 0, 1, 0], "X has 6 samples but y has 5"),
        (TextRegressor, np.ones(7), "X has 6 samples but y has 7"),
        (TextClassifier, np.zeros((6, 2)), r"1-D class labels, got y of shape \(6, 2\)"),
        (TextClassifier, np.linspace(0, 1, 6), "Unknown label type"),
        (TextRegressor, ["a", "b", "a", "b", "a", "b"], "numeric targets"),
        (TextRegressor, np.ones((6, 2, 2)), "numeric targets"),
        (TextClassifier, None, "needs y"),
    ],
)
def test_bad_targets_are_reported(make, cls, y, match):
    X, _ = toy_texts(6)
    with pytest.raises(ValueError, match=match):
        make(cls).fit(X, y)


def test_nan_positions_are_listed(make):
    X, _ = toy_texts(6)
    with pytest.raises(ValueError, match="2 missing values .* at positions 1, 4;"):
        make(ImageRegressor).fit(toy_images(6)[0], [0, np.nan, 1, 2, np.nan, 3])
    with pytest.raises(ValueError, match="missing values"):
        make(TextClassifier).fit(X, [0.0, 1.0, np.nan, 0.0, 1.0, 0.0])


@pytest.mark.parametrize("cls", ALL)
def test_empty_X_is_reported(make, cls):
    with pytest.raises(InvalidInputError, match="empty X"):
        make(cls).fit([], [])


def test_validation_fraction_leaving_no_training_data_is_reported(make):
    X, y = toy_texts(4)
    est = make(TextClassifier, early_stopping=True, validation_fraction=0.9)
    with pytest.raises(ValueError, match="leaves no training data"):
        est.fit(X, y)


# ----------------------------------------------------------- reproducibility
@pytest.mark.parametrize("cls", [TextClassifier, ImageRegressor])
def test_random_state_decides_the_result(make, cls):
    X, y = toy_data(cls, 16)

    def output(random_state, global_seed):
        # The global random states differ between runs: random_state alone decides.
        torch.manual_seed(global_seed)
        np.random.seed(global_seed)  # noqa: NPY002
        random.seed(global_seed)
        est = make(cls, trainable_blocks=1, head_dropout=0.2, random_state=random_state)
        est.fit(X, y)
        return est.predict_proba(X) if cls is TextClassifier else est.predict(X)

    first = output(0, global_seed=1)
    np.testing.assert_array_equal(output(0, global_seed=2), first)
    assert not np.allclose(output(1, global_seed=1), first)


@pytest.mark.parametrize("cls", [TextClassifier, ImageClassifier])
def test_every_fit_starts_from_the_pretrained_weights(make, cls):
    X, y = toy_data(cls, 8, seed=0)
    X_other, y_other = toy_data(cls, 8, seed=5)
    y_other = 1 - y_other  # other data, other labels
    est = make(cls, trainable_blocks="all", epochs=1)
    first = est.fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(est.fit(X, y).predict_proba(X), first)
    # Fitted on other data in between: no trace of that fit is left.
    other = est.fit(X_other, y_other).predict_proba(X)
    assert not np.allclose(other, first)
    np.testing.assert_array_equal(est.fit(X, y).predict_proba(X), first)


def test_fit_leaves_the_global_random_states_alone(make):
    X, y = toy_texts(8)
    torch_state, numpy_state, python_state = (
        torch.random.get_rng_state(),
        np.random.get_state(),  # noqa: NPY002 - the state a user's legacy code sees
        random.getstate(),
    )
    make(TextClassifier, epochs=1, head_dropout=0.5).fit(X, y)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state[1])  # noqa: NPY002
    assert random.getstate() == python_state


# ----------------------------------------------------------------- save/load
def _no_pickle_in(folder) -> list[str]:
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert files
    suspicious = []
    for path in files:
        head = path.read_bytes()[:2]
        # pickle protocol 2+ starts with 0x80; torch.save writes a zip ("PK").
        if path.suffix in {".pkl", ".pickle", ".pt", ".pth", ".bin", ".joblib"} or head in (
            b"\x80\x02",
            b"\x80\x03",
            b"\x80\x04",
            b"\x80\x05",
            b"PK",
        ):
            suspicious.append(str(path.relative_to(folder)))
    return suspicious


@pytest.mark.parametrize(
    ("cls", "params"),
    [
        (TextClassifier, {"class_weight": {"neg": 1.0, "pos": 2.0}, "trainable_blocks": 1}),
        (TextRegressor, {"max_length": 16}),
        (ImageClassifier, {"augmentation": "light", "early_stopping": True}),
        (ImageRegressor, {"trainable_blocks": "all"}),
    ],
)
def test_save_and_load_round_trip(make, tmp_path, cls, params):
    X, y = toy_data(cls, 16)
    if cls is TextClassifier:
        y = np.where(y == 1, "pos", "neg")
    if cls is ImageRegressor:
        y = np.column_stack([y, -3.0 * y])
    est = make(cls, **params).fit(X, y)
    expected = est.predict_proba(X) if hasattr(est, "classes_") else est.predict(X)
    folder = tmp_path / "saved"
    est.save(folder)
    assert (folder / "config.json").is_file() and (folder / "weights.safetensors").is_file()
    assert _no_pickle_in(folder) == []
    assert json.loads((folder / "config.json").read_text())["class"] == cls.__name__
    for loaded in (cls.load(folder), sktransfer.finetune.load(folder)):
        assert type(loaded) is cls
        assert loaded.get_params() == est.get_params()
        got = loaded.predict_proba(X) if hasattr(est, "classes_") else loaded.predict(X)
        np.testing.assert_array_equal(got, expected)
        assert loaded.history_ == est.history_
        assert (loaded.n_epochs_, loaded.best_epoch_) == (est.n_epochs_, est.best_epoch_)
        if hasattr(est, "classes_"):
            np.testing.assert_array_equal(loaded.classes_, est.classes_)
            assert loaded.classes_.dtype == est.classes_.dtype
        else:
            assert loaded.n_outputs_ == est.n_outputs_


def test_loading_the_wrong_class_or_folder_fails(make, tmp_path):
    X, y = toy_texts(8)
    make(TextClassifier, epochs=1).fit(X, y).save(tmp_path / "clf")
    with pytest.raises(InvalidInputError, match="holds a TextClassifier, not ImageClassifier"):
        ImageClassifier.load(tmp_path / "clf")
    with pytest.raises(InvalidInputError, match="holds a TextClassifier, not TextRegressor"):
        TextRegressor.load(tmp_path / "clf")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        sktransfer.finetune.load(tmp_path / "nothing-here")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(InvalidInputError, match="not a saved sktransfer"):
        sktransfer.finetune.load(tmp_path / "other")


def test_save_before_fit_raises(make, tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError, match="not fitted"):
        make(TextClassifier).save(tmp_path / "x")


# -------------------------------------------------------------------- pickle
@pytest.mark.parametrize("cls", [TextClassifier, ImageRegressor])
def test_pickle_stores_cpu_tensors_and_no_live_network(make, cls):
    X, y = toy_data(cls, 8)
    est = make(cls, epochs=1).fit(X, y)
    state = est.__getstate__()
    assert "_net" not in state and "_adapter" not in state
    tensors = state["_net_state"]
    assert tensors and all(t.device.type == "cpu" for t in tensors.values())
    assert all(isinstance(t, torch.Tensor) for t in tensors.values())


@pytest.mark.parametrize(("cls", "device"), [(TextClassifier, "auto"), (ImageClassifier, "cuda")])
def test_gpu_fitted_estimator_unpickles_on_the_cpu_with_a_warning(make, monkeypatch, cls, device):
    import sktransfer._device

    monkeypatch.setattr(sktransfer._device, "_cuda_available", lambda: False)
    X, y = toy_data(cls, 8)
    est = make(cls, epochs=1).fit(X, y)
    expected = est.predict_proba(X)
    # What a CUDA fit looks like once pickled: its weights are CPU tensors anyway.
    est.device_ = "cuda:0"
    est.device = device
    blob = pickle.dumps(est)
    loaded = pickle.loads(blob)
    with pytest.warns(UserWarning, match="fitted on 'cuda:0'.*loaded on 'cpu'"):
        proba = loaded.predict_proba(X)
    np.testing.assert_array_equal(proba, expected)
    assert loaded.device_ == "cpu"
    assert loaded.get_params()["device"] == device
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(loaded.predict_proba(X), expected)
        # Pickled again (now fitted on the CPU), it loads without a warning.
        np.testing.assert_array_equal(pickle.loads(pickle.dumps(loaded)).predict_proba(X), expected)


# ------------------------------------------------------------ history and plot
def test_history_records_every_epoch(make):
    X, y = toy_texts(20)
    est = make(TextClassifier, epochs=3, early_stopping=True, n_iter_no_change=5)
    est.fit(X, y)
    assert len(est.history_) == est.n_epochs_ == 3
    for i, record in enumerate(est.history_):
        assert record["epoch"] == i + 1
        assert np.isfinite(record["train_loss"]) and record["train_loss"] > 0
        assert 0.0 <= record["valid_score"] <= 1.0
        assert set(record["learning_rates"]) == {"head", "block_1", "block_2"}
        assert record["time"] >= record["train_time"] >= 0.0
    assert est.validation_metric_ == "accuracy"
    no_valid = make(TextClassifier, epochs=2).fit(X, y)
    assert [r["valid_score"] for r in no_valid.history_] == [None, None]
    assert no_valid.validation_metric_ is None and no_valid.best_epoch_ is None


def test_train_loss_is_the_weighted_mean_of_the_sample_losses(make, monkeypatch):
    """With the learning rate at 0 nothing changes, so the loss can be recomputed."""
    from sktransfer.finetune import _loop

    monkeypatch.setattr(_loop, "warmup_then_linear_decay", lambda total, warmup: lambda s: 0.0)
    X, y = toy_texts(12)
    weight = np.linspace(0.1, 3.0, 12)
    est = make(TextClassifier, epochs=1, trainable_blocks=0).fit(X, y, sample_weight=weight)
    log_proba = est.predict_log_proba(X)[np.arange(12), y]
    expected = np.average(-log_proba, weights=weight)
    assert est.history_[0]["train_loss"] == pytest.approx(expected, rel=1e-4)


@pytest.fixture
def pyplot():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


def test_plot_history_draws_the_curves(make, pyplot):
    X, y = toy_texts(20)
    est = make(TextClassifier, epochs=3, early_stopping=True, n_iter_no_change=5).fit(X, y)
    ax = plot_history(est)
    losses = [r["train_loss"] for r in est.history_]
    scores = [r["valid_score"] for r in est.history_]
    (loss_line,) = ax.get_lines()
    np.testing.assert_array_equal(loss_line.get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(loss_line.get_ydata(), losses)
    assert ax.get_xlabel() == "epoch"
    assert ax.get_ylabel() == "training loss"
    axes = ax.figure.axes
    assert len(axes) == 2
    twin = axes[1]
    assert twin.get_ylabel() == "validation accuracy"
    score_line, best_line = twin.get_lines()
    np.testing.assert_allclose(score_line.get_ydata(), scores)
    assert list(best_line.get_xdata()) == [est.best_epoch_] * 2
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == ["training loss", "validation accuracy", "best epoch"]


def test_plot_history_takes_a_history_list_and_an_axes(pyplot):
    history = [
        {"epoch": 1, "train_loss": 0.9, "valid_score": None},
        {"epoch": 2, "train_loss": 0.4, "valid_score": None},
    ]
    _, ax = pyplot.subplots()
    assert plot_history(history, ax=ax) is ax
    assert len(ax.figure.axes) == 1
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [0.9, 0.4])
    with pytest.raises(TypeError, match="expects a fitted fine-tuning estimator"):
        plot_history(TextClassifier())


def _integer_ticks_in_range(axis, low, high):
    ticks = [t for t in axis.get_ticklocs() if low - 1e-9 <= t <= high + 1e-9]
    return ticks and all(float(t).is_integer() for t in ticks)


@pytest.mark.parametrize("cls", [TextClassifier, ImageRegressor])
def test_plot_history_method_integer_epochs_legend_off_the_data(make, pyplot, cls):
    X, y = toy_data(cls, 16)
    est = make(cls, epochs=3, early_stopping=True, validation_fraction=0.25, n_iter_no_change=5)
    ax = est.fit(X, y).plot_history()
    ax.figure.canvas.draw()
    assert _integer_ticks_in_range(ax.xaxis, 1, 3), list(ax.get_xticks())
    metric = "validation accuracy" if cls is TextClassifier else "validation R²"
    assert [ax.get_xlabel(), ax.get_ylabel(), ax.figure.axes[1].get_ylabel()] == [
        "epoch",
        "training loss",
        metric,
    ]
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["training loss", metric, "best epoch"]
    box, area = legend.get_window_extent(), ax.get_window_extent()
    assert box.y0 >= area.y1, "the legend overlaps the plotted area"
    _, mine = pyplot.subplots()
    assert est.plot_history(ax=mine) is mine
    with pytest.raises(NotFittedError, match="not fitted"):
        cls().plot_history()


def test_plot_history_names_a_lower_is_better_metric(make, pyplot):
    X, y = toy_texts(16)
    est = make(
        TextClassifier,
        epochs=2,
        early_stopping=True,
        validation_metric="log_loss",
        n_iter_no_change=5,
    ).fit(X, y)
    assert est.plot_history().figure.axes[1].get_ylabel() == "validation log-loss"


# ---------------------------------------------------------------- model selection
def test_grid_search_refits_the_best_parameters_from_scratch(make):
    X, y = toy_texts(12)
    est = make(TextClassifier, trainable_blocks=0, epochs=1)
    grid = {"class_weight": [None, {0: 1.0, 1: 3.0}], "layer_decay": [0.5]}
    search = GridSearchCV(est, grid, cv=2).fit(X, y)
    assert len(search.cv_results_["params"]) == 2
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    direct = clone(est).set_params(**search.best_params_).fit(X, y)
    np.testing.assert_array_equal(search.best_estimator_.predict_proba(X), direct.predict_proba(X))


def test_cross_val_score_of_a_pipeline_equals_fitting_each_fold(make):
    X, y = toy_texts(16)
    X = np.asarray(X, dtype=object)
    pipe = make_pipeline(
        FunctionTransformer(lambda texts: [t.upper() for t in texts]),
        make(TextClassifier, trainable_blocks=1, epochs=1),
    )
    cv = StratifiedKFold(2, shuffle=True, random_state=0)
    scores = cross_val_score(pipe, X, y, cv=cv)
    by_hand = [
        clone(pipe).fit(X[train], y[train]).score(X[test], y[test])
        for train, test in cv.split(X, y)
    ]
    np.testing.assert_array_equal(scores, by_hand)


def test_gpu_memory_is_released_after_a_fit_and_cpu_fits_skip_the_full_collection(monkeypatch):
    import gc

    import torch

    from sktransfer.finetune import _base

    calls = []
    monkeypatch.setattr(gc, "collect", lambda *a: calls.append("gc") or 0)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append("empty_cache"))
    _base._release_memory("cpu")
    _base._release_memory(None)
    assert calls == []
    _base._release_memory("cuda:0")
    assert calls == ["gc", "empty_cache"]
