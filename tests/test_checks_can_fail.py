"""The contract checks can fail: each one catches a deliberately broken encoder.

The broken encoders are real ``TextEncoder`` / ``ImageEncoder`` subclasses whose
``_encode`` (the model call behind ``transform``, under the cache) is wrong in one
way: a row depends on the rest of its batch, on how often the model ran, or is
put in the wrong place. Each check runs on the correct encoder (it passes) and
on a broken one (it must raise ``AssertionError``).

The last test shows why the checks need ``cache=None``: with the default cache
the same checks pass on the broken encoders, because every repeated sample is
answered with the vector the first call stored.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sktransfer import ImageEncoder, TextEncoder
from tests import contract_checks
from tests.conftest import image_samples, text_samples
from tests.contract_checks import (
    check_batch_size_does_not_change_the_output,
    check_output_is_deterministic,
    check_pickled_copy_gives_the_same_output,
    check_rows_depend_on_their_sample_only,
)


class AddsTheBatchMean:
    """Each model batch of ``batch_size`` rows gets the batch's mean row added."""

    def _encode(self, items, failed, labels=None):
        out = super()._encode(items, failed, labels)
        for start in range(0, len(out), self.batch_size):
            rows = out[start : start + self.batch_size]
            rows += rows.mean(axis=0)
        return out


_CALLS = itertools.count(1)


class DriftsWithEveryCall:
    """Every model call shifts its output a little further (a leaked state)."""

    def _encode(self, items, failed, labels=None):
        return super()._encode(items, failed, labels) + 0.01 * next(_CALLS)


class ShiftsRowsByOne:
    """Row i gets the vector of sample i - 1 (the last sample's goes to row 0)."""

    def _encode(self, items, failed, labels=None):
        return np.roll(super()._encode(items, failed, labels), 1, axis=0)


class BatchMeanTextEncoder(AddsTheBatchMean, TextEncoder):
    pass


class BatchMeanImageEncoder(AddsTheBatchMean, ImageEncoder):
    pass


class DriftingTextEncoder(DriftsWithEveryCall, TextEncoder):
    pass


class DriftingImageEncoder(DriftsWithEveryCall, ImageEncoder):
    pass


class ShiftingTextEncoder(ShiftsRowsByOne, TextEncoder):
    pass


class ShiftingImageEncoder(ShiftsRowsByOne, ImageEncoder):
    pass


BROKEN = {
    "text": {
        "batch mean": BatchMeanTextEncoder,
        "drift": DriftingTextEncoder,
        "shift": ShiftingTextEncoder,
    },
    "image": {
        "batch mean": BatchMeanImageEncoder,
        "drift": DriftingImageEncoder,
        "shift": ShiftingImageEncoder,
    },
}

# Which check must catch which fault.
CAUGHT_BY = [
    (check_output_is_deterministic, "drift"),
    (check_rows_depend_on_their_sample_only, "batch mean"),
    (check_rows_depend_on_their_sample_only, "shift"),
    (check_batch_size_does_not_change_the_output, "batch mean"),
    (check_pickled_copy_gives_the_same_output, "drift"),
]
ids = [f"{check.__name__}-{fault}" for check, fault in CAUGHT_BY]


@pytest.fixture(params=["text", "image"])
def modality(request, tiny_text_model, tiny_image_weights):
    """(build an encoder of a given class, X, y) for one modality."""
    if request.param == "text":
        X, y = text_samples()

        def build(cls, **params):
            return cls(tiny_text_model, batch_size=5, progress=False, **params)

    else:
        X, y = image_samples()

        def build(cls, **params):
            return cls(
                "test_efficientnet",
                weights=tiny_image_weights,
                batch_size=5,
                image_size=32,
                progress=False,
                **params,
            )

    return request.param, build, X, y


@pytest.mark.parametrize(("check", "fault"), CAUGHT_BY, ids=ids)
def test_check_passes_on_the_real_encoder(modality, check, fault):
    name, build, X, y = modality
    real = TextEncoder if name == "text" else ImageEncoder
    check(build(real, cache=None), X, y)


@pytest.mark.parametrize(("check", "fault"), CAUGHT_BY, ids=ids)
def test_check_fails_on_a_broken_encoder(modality, check, fault):
    name, build, X, y = modality
    with pytest.raises(AssertionError, match="Not equal to tolerance|Arrays are not equal"):
        check(build(BROKEN[name][fault], cache=None), X, y)


def test_checks_refuse_an_encoder_with_a_cache(tiny_text_model):
    X, y = text_samples()
    with pytest.raises(AssertionError, match="needs cache=None"):
        check_output_is_deterministic(TextEncoder(tiny_text_model, progress=False), X, y)


@pytest.mark.parametrize(("check", "fault"), CAUGHT_BY, ids=ids)
def test_with_the_default_cache_the_same_checks_miss_the_fault(modality, check, fault, monkeypatch):
    """Why the checks run with cache=None: the cache hides every one of these faults.

    The repeated calls of a check are answered from the store the first call
    filled (``batch_size`` is not part of the cache key, and a pickled copy or a
    clone shares the key), so each check compares the first call's vectors with
    themselves.
    """
    name, build, X, y = modality
    monkeypatch.setattr(contract_checks, "_uncached", lambda est: None)
    check(build(BROKEN[name][fault]), X, y)  # cache="memory": passes, fault and all
