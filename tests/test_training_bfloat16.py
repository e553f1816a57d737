"""Training in bfloat16 autocast on CPUs that compute it natively (mixed_precision).

The capability (``_precision.native_bfloat16``) is mocked both ways; the
training is real (tiny models), and its loss curve is compared with float32.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from sktransfer import FewShotTextClassifier, TextClassifier, _precision
from sktransfer.exceptions import PrecisionWarning
from sktransfer.finetune._base import _amp_dtype
from sktransfer.finetune._net import FineTuneNet
from tests.conftest import text_samples


@pytest.fixture
def native(monkeypatch):
    monkeypatch.setattr(_precision, "native_bfloat16", lambda device: (True, "native (mocked)"))


@pytest.fixture
def emulated(monkeypatch):
    monkeypatch.setattr(
        _precision, "native_bfloat16", lambda device: (False, "the CPU lacks it (mocked)")
    )


def test_auto_trains_in_bfloat16_where_native(native):
    assert _amp_dtype("auto", "cpu") is torch.bfloat16
    assert _amp_dtype(True, "cpu") is torch.bfloat16
    assert _amp_dtype(False, "cpu") is None
    assert _amp_dtype("auto", "mps") is None


def test_auto_trains_in_float32_where_bfloat16_is_emulated(emulated):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _amp_dtype("auto", "cpu") is None
    with pytest.warns(PrecisionWarning, match=r"TextClassifier\(mixed_precision=True\).*lacks it"):
        assert _amp_dtype(True, "cpu", owner="TextClassifier") is None


def _record_autocast(monkeypatch) -> list:
    """The autocast state of every training forward pass of a FineTuneNet."""
    seen = []
    forward = FineTuneNet.forward

    def spy(self, *args, **kwargs):
        if self.training:
            enabled = torch.is_autocast_enabled("cpu")
            seen.append(torch.get_autocast_dtype("cpu") if enabled else torch.float32)
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(FineTuneNet, "forward", spy)
    return seen


def _classifier(model, mixed_precision, epochs=8):
    return TextClassifier(
        model,
        epochs=epochs,
        batch_size=8,
        learning_rate=1e-2,
        trainable_blocks="all",
        early_stopping=False,
        mixed_precision=mixed_precision,
        random_state=0,
        verbose=0,
    )


def test_training_steps_run_in_bfloat16_where_native(native, monkeypatch, tiny_text_model):
    seen = _record_autocast(monkeypatch)
    X, y = text_samples(24)
    _classifier(tiny_text_model, "auto", epochs=1).fit(X, y)
    assert seen and set(seen) == {torch.bfloat16}


def test_training_steps_run_in_float32_when_turned_off(native, monkeypatch, tiny_text_model):
    seen = _record_autocast(monkeypatch)
    X, y = text_samples(24)
    _classifier(tiny_text_model, False, epochs=1).fit(X, y)
    assert seen and set(seen) == {torch.float32}


def test_the_bfloat16_loss_curve_follows_float32(native, tiny_text_model):
    X, y = text_samples(32)
    exact = _classifier(tiny_text_model, False).fit(X, y)
    half = _classifier(tiny_text_model, "auto").fit(X, y)
    f32 = np.array([h["train_loss"] for h in exact.history_])
    bf16 = np.array([h["train_loss"] for h in half.history_])
    assert f32[-1] < 0.5 * f32[0], "the float32 fit itself must learn for the check to mean much"
    # Same data, seed and schedule: the curves differ by bfloat16 rounding only.
    np.testing.assert_allclose(bf16, f32, rtol=0.05, atol=0.02)
    assert bf16[-1] < 0.5 * bf16[0]
    assert np.mean(half.predict(X) == exact.predict(X)) >= 0.9


def test_head_only_training_stays_float32_and_uses_the_frozen_features(
    native, monkeypatch, tiny_text_model
):
    # A linear head gains nothing from bfloat16: no autocast, the exact float32 features.
    seen = _record_autocast(monkeypatch)
    X, y = text_samples(24)
    TextClassifier(tiny_text_model, trainable_blocks=0, epochs=2, random_state=0, verbose=0).fit(
        X, y
    )
    assert torch.float32 in seen or not seen
    assert torch.bfloat16 not in seen


def test_few_shot_training_runs_in_bfloat16_where_native(native, monkeypatch, tiny_text_model):
    import sentence_transformers

    seen = []
    forward = sentence_transformers.SentenceTransformer.forward

    def spy(self, *args, **kwargs):
        if self.training:
            enabled = torch.is_autocast_enabled("cpu")
            seen.append(torch.get_autocast_dtype("cpu") if enabled else torch.float32)
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(sentence_transformers.SentenceTransformer, "forward", spy)
    X, y = text_samples(16)
    FewShotTextClassifier(tiny_text_model, pairs_per_sample=4, random_state=0, verbose=0).fit(X, y)
    assert seen and set(seen) == {torch.bfloat16}
