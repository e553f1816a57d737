"""Fine-tuning shortcuts that must not change the result: frozen-body features, precision."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from sktransfer import ImageClassifier, TextClassifier, TextRegressor, _precision
from sktransfer._adapters.text import sentence_transformer_body
from sktransfer.exceptions import PrecisionWarning
from sktransfer.finetune import _loop
from tests.conftest import image_samples, text_samples, tiny_image_classifier


class ForwardCounter:
    """Count the samples the text body encodes (every forward call)."""

    def __init__(self, monkeypatch):
        self.samples = 0
        body_class = sentence_transformer_body()
        original = body_class.forward

        def counting(body, features):
            self.samples += int(features["input_ids"].shape[0])
            return original(body, features)

        monkeypatch.setattr(body_class, "forward", counting)


def _text_clf(model, **kwargs):
    params = dict(trainable_blocks=0, epochs=4, batch_size=8, learning_rate=1e-2, random_state=0)
    return TextClassifier(model, **{**params, **kwargs})


def test_head_only_training_runs_the_body_once_per_sample(tiny_text_model, monkeypatch):
    X, y = text_samples(30)
    counter = ForwardCounter(monkeypatch)
    clf = _text_clf(tiny_text_model, early_stopping=True, validation_fraction=0.2).fit(X, y)
    assert clf.n_epochs_ == 4
    # The frozen body's features come from the frozen encoder (the same body), through
    # the embedding cache: 24 training + 6 validation samples, encoded once each.
    from sktransfer.cache import cache_info

    assert counter.samples == len(X)
    assert cache_info().misses == len(X)


def test_training_top_blocks_runs_the_body_every_epoch(tiny_text_model, monkeypatch):
    X, y = text_samples(30)
    counter = ForwardCounter(monkeypatch)
    _text_clf(tiny_text_model, trainable_blocks=1).fit(X, y)
    assert counter.samples == 4 * len(X)


def test_gradual_unfreezing_into_the_body_runs_the_body(tiny_text_model, monkeypatch):
    X, y = text_samples(30)
    counter = ForwardCounter(monkeypatch)
    _text_clf(tiny_text_model, unfreeze_every=2).fit(X, y)  # a block trains from epoch 3
    assert counter.samples == 4 * len(X)


@pytest.mark.parametrize("early_stopping", [False, True])
def test_frozen_body_features_give_the_same_model(tiny_text_model, monkeypatch, early_stopping):
    X, y = text_samples(40)
    params = dict(early_stopping=early_stopping, validation_fraction=0.25, head_dropout=0.2)
    fast = _text_clf(tiny_text_model, **params).fit(X, y)
    monkeypatch.setattr(_loop.TrainingLoop, "body_always_frozen", lambda self: False)
    slow = _text_clf(tiny_text_model, **params).fit(X, y)
    np.testing.assert_allclose(fast.predict_proba(X), slow.predict_proba(X), atol=1e-5)
    for a, b in zip(fast.history_, slow.history_, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-5)
        assert a["valid_score"] == b["valid_score"]


def test_augmented_images_are_not_served_from_frozen_features(tiny_image_weights, monkeypatch):
    X, y = image_samples(12, size=36)
    collated = []
    original = _loop.TrainingLoop.train_step

    def spy(loop, train, rows):
        collated.append(loop.features_cached)
        return original(loop, train, rows)

    monkeypatch.setattr(_loop.TrainingLoop, "train_step", spy)
    common = dict(weights=tiny_image_weights, image_size=32, trainable_blocks=0, epochs=2)
    ImageClassifier("test_efficientnet", augmentation="light", random_state=0, **common).fit(X, y)
    assert collated and not any(collated)
    collated.clear()
    ImageClassifier("test_efficientnet", random_state=0, **common).fit(X, y)
    assert collated and all(collated)


def test_the_first_epoch_pays_for_the_feature_pass(tiny_text_model):
    X, y = text_samples(30)
    clf = _text_clf(tiny_text_model).fit(X, y)
    assert all(record["time"] >= record["train_time"] > 0 for record in clf.history_)


# ---------------------------------------------------------------- precision
def test_prediction_precision_defaults_to_auto_float32_without_native_bfloat16(
    tiny_text_model,
):
    X, y = text_samples(20)
    clf = _text_clf(tiny_text_model, epochs=1).fit(X, y)
    assert clf.precision == "auto" and clf.precision_ == "float32"


def test_bfloat16_predictions_are_close_and_training_is_unchanged(tiny_text_model, monkeypatch):
    monkeypatch.setattr(_precision, "cpu_bfloat16_speedup", lambda: 2.5)
    X, y = text_samples(20)
    exact = _text_clf(tiny_text_model, epochs=2).fit(X, y)
    fast = _text_clf(tiny_text_model, epochs=2, precision="bfloat16").fit(X, y)
    assert fast.precision_ == "bfloat16"
    assert [h["train_loss"] for h in fast.history_] == [h["train_loss"] for h in exact.history_]
    proba_exact, proba_fast = exact.predict_proba(X), fast.predict_proba(X)
    assert not np.array_equal(proba_fast, proba_exact)
    np.testing.assert_allclose(proba_fast, proba_exact, atol=0.05)


@pytest.mark.parametrize("kind", ["text", "image"])
def test_bfloat16_prediction_casts_the_weights_once_with_autocasts_numbers(
    kind, tiny_text_model, tiny_image_weights, monkeypatch
):
    import torch

    from sktransfer import _inference

    monkeypatch.setattr(_precision, "cpu_bfloat16_speedup", lambda: float("inf"))
    if kind == "text":
        X, y = text_samples(20)
        est = _text_clf(tiny_text_model, epochs=1, precision="bfloat16")
    else:
        X, y = image_samples(12)
        est = tiny_image_classifier(tiny_image_weights, precision="bfloat16")
    est.fit(X, y)
    for switch in ("SKTRANSFER_FOLD_BATCHNORM", "SKTRANSFER_FUSE_ACTIVATIONS"):
        monkeypatch.setenv(switch, "0")  # the cast-once copy only (the rewrites: below)
    monkeypatch.setenv("SKTRANSFER_STATIC_PADDING", "0")
    calls = []
    original = _loop.predict_outputs

    def spy(net, *args, **kwargs):
        calls.append(net)
        return original(net, *args, **kwargs)

    monkeypatch.setattr(_loop, "predict_outputs", spy)
    got = est.predict_proba(X)
    run = calls[-1]
    assert run is not est._net
    layers = [m for m in run.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    assert layers and all(m.weight.dtype == torch.bfloat16 for m in layers)
    assert all(p.dtype == torch.float32 for p in est._net.parameters())  # the net unchanged
    assert est.predict_proba(X) is not None and calls[-1] is run  # made once, reused
    # Autocast on the net itself computes the same numbers.
    monkeypatch.setattr(_inference, "runner", lambda net, *args, **kwargs: net)
    np.testing.assert_array_equal(got, est.predict_proba(X))
    assert calls[-1] is est._net


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_image_predictions_run_the_checked_inference_copy_channels_last(
    precision, tiny_image_weights, monkeypatch
):
    import torch

    from sktransfer import _inference

    monkeypatch.setattr(_precision, "cpu_bfloat16_speedup", lambda: float("inf"))
    X, y = image_samples(12)
    est = tiny_image_classifier(tiny_image_weights, precision=precision).fit(X, y)
    formats = []
    forward = type(est._net).forward

    def recording(self, batch):
        formats.append(batch.is_contiguous(memory_format=torch.channels_last))
        return forward(self, batch)

    monkeypatch.setattr(type(est._net), "forward", recording)
    got = est.predict_proba(X)
    run, memory_format = est._prediction_runner(est._net)
    assert run is not est._net and memory_format is torch.channels_last
    assert _inference.folds_batchnorm(run)  # BatchNorm folded into the convolutions
    assert formats and all(formats)  # channels-last batches
    assert all(p.dtype == torch.float32 for p in est._net.parameters())  # the net unchanged
    # The network as trained (no copy) gives the same predictions, to rounding.
    monkeypatch.setattr(_inference, "runner", lambda net, *args, **kwargs: net)
    exact = est.predict_proba(X)
    atol = 1e-5 if precision == "float32" else 0.02
    np.testing.assert_allclose(got, exact, atol=atol)


def test_slow_bfloat16_falls_back_with_a_warning(tiny_text_model, monkeypatch):
    monkeypatch.setattr(_precision, "cpu_bfloat16_speedup", lambda: 0.5)
    X, y = text_samples(20)
    with pytest.warns(PrecisionWarning, match="bfloat16"):
        reg = TextRegressor(
            tiny_text_model, trainable_blocks=0, epochs=1, precision="bfloat16", random_state=0
        ).fit(X, y.astype(float))
    assert reg.precision_ == "float32"
    assert reg.get_params()["precision"] == "bfloat16"


def test_float16_predictions_from_a_gpu_fall_back_on_a_cpu(tiny_text_model):
    X, y = text_samples(20)
    clf = _text_clf(tiny_text_model, epochs=1).fit(X, y)
    expected = clf.predict_proba(X)
    state = clf.__getstate__()
    state.update(device="cuda", device_="cuda:0", precision="float16", precision_="float16")
    moved = TextClassifier.__new__(TextClassifier)
    moved.__setstate__(pickle.loads(pickle.dumps(state)))
    with pytest.warns(UserWarning) as record:
        proba = moved.predict_proba(X)
    messages = " ".join(str(w.message) for w in record)
    assert "float16" in messages
    assert moved.device_ == "cpu" and moved.precision_ == "float32"
    np.testing.assert_allclose(proba, expected, atol=1e-6)
