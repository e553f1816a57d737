"""Fine-tuning applies the same allocator tuning as the encoders (sktransfer/_malloc.py).

docs/speed.md measures a fit in a fresh process with and without it; these tests
check that ``fit`` asks for it on a CPU, and never on import or in ``__init__``.
"""

from __future__ import annotations

import pytest

from sktransfer import _malloc
from sktransfer.finetune import ImageClassifier, TextClassifier
from tests.finetune_helpers import (
    image_estimator,
    one_torch_thread,  # noqa: F401  (an autouse fixture)
    text_estimator,
    toy_images,
    toy_texts,
)


@pytest.fixture
def mallopt_calls(monkeypatch):
    """The ``mallopt`` calls made from here on, with the once-per-process state reset."""
    calls = []
    monkeypatch.setattr(_malloc, "_applied", None)
    monkeypatch.setattr(_malloc, "_is_glibc", lambda: True)
    monkeypatch.setattr(_malloc, "_mallopt", lambda param, value: calls.append(param) or True)
    for var in ("SKTRANSFER_TUNE_MALLOC", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
        monkeypatch.delenv(var, raising=False)
    return calls


@pytest.mark.parametrize("kind", ["text", "image"])
def test_fit_on_cpu_raises_the_allocator_thresholds(
    kind, mallopt_calls, tiny_text_model, tiny_image_weights
):
    if kind == "text":
        model = text_estimator(TextClassifier, tiny_text_model, epochs=1)
        X, y = toy_texts(8, 0)
    else:
        model = image_estimator(ImageClassifier, tiny_image_weights, epochs=1)
        X, y = toy_images(8, 0)
    assert mallopt_calls == []  # not in __init__
    model.fit(X, y)
    assert sorted(mallopt_calls) == sorted([_malloc.M_MMAP_THRESHOLD, _malloc.M_TRIM_THRESHOLD])


def test_fit_leaves_the_allocator_alone_when_opted_out(mallopt_calls, monkeypatch, tiny_text_model):
    monkeypatch.setenv("SKTRANSFER_TUNE_MALLOC", "0")
    X, y = toy_texts(8, 0)
    text_estimator(TextClassifier, tiny_text_model, epochs=1).fit(X, y)
    assert mallopt_calls == []
