"""Head-only fine-tuning reads the frozen body's features from the embedding cache."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from sktransfer import ImageClassifier, TextClassifier, TextEncoder
from sktransfer.cache import cache_info
from tests.conftest import image_samples, text_samples

# Tiny random models learn little in an epoch or two; what is tested here is the cache.
pytestmark = pytest.mark.filterwarnings("ignore::sktransfer.exceptions.UnderfitWarning")


def _head_only(model, **kwargs):
    return TextClassifier(
        model, trainable_blocks=0, epochs=2, learning_rate=1e-2, random_state=0, verbose=0, **kwargs
    )


def test_a_second_head_only_fit_encodes_nothing(tiny_text_model):
    X, y = text_samples(12)
    first = _head_only(tiny_text_model).fit(X, y)
    after_first = cache_info()
    assert after_first.misses == len(set(X))  # the body's features went through the cache
    second = clone(first).fit(X, y)
    after_second = cache_info()
    assert after_second.misses == after_first.misses
    assert after_second.hits - after_first.hits == len(set(X))
    np.testing.assert_allclose(second.predict_proba(X), first.predict_proba(X), rtol=1e-6)


def test_frozen_encoder_and_head_only_fit_share_the_cache(tiny_text_model):
    X, y = text_samples(12)
    TextEncoder(tiny_text_model, progress=False).fit().transform(X)
    before = cache_info()
    _head_only(tiny_text_model).fit(X, y)
    after = cache_info()
    assert (after.misses, after.hits - before.hits) == (before.misses, len(set(X)))


def test_cached_features_train_the_same_head(tiny_text_model, monkeypatch):
    from sktransfer.finetune import _frozen_features

    X, y = text_samples(12)
    cached = _head_only(tiny_text_model, early_stopping=True, validation_fraction=0.25).fit(X, y)
    monkeypatch.setattr(_frozen_features, "cached_body_features", lambda *a: lambda items: None)
    direct = _head_only(tiny_text_model, early_stopping=True, validation_fraction=0.25).fit(X, y)
    assert cache_info().misses == len(set(X))  # the second fit did not use the cache
    np.testing.assert_allclose(
        cached._net.head.weight.numpy(), direct._net.head.weight.numpy(), rtol=1e-4, atol=1e-6
    )
    assert [r["valid_score"] for r in cached.history_] == pytest.approx(
        [r["valid_score"] for r in direct.history_]
    )


def test_a_body_that_trains_does_not_use_the_cache(tiny_text_model):
    X, y = text_samples(8)
    TextClassifier(tiny_text_model, trainable_blocks=1, epochs=1, random_state=0, verbose=0).fit(
        X, y
    )
    assert cache_info().misses == 0


def test_image_head_only_fit_runs_its_own_body(tiny_image_weights):
    X, y = image_samples(8)
    clf = ImageClassifier(
        "test_efficientnet",
        weights=tiny_image_weights,
        trainable_blocks=0,
        epochs=1,
        random_state=0,
        verbose=0,
    )
    clf.fit(X, y)
    assert cache_info().misses == 0  # same numbers as ever: not the channels-last encoder
