"""Speed options: precision, n_threads, channels-last, the allocator thresholds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sktransfer import ImageEncoder, TextEncoder, _malloc, _precision
from sktransfer._precision import resolve_precision
from sktransfer._threads import resolve_n_threads, torch_threads
from sktransfer.exceptions import PrecisionWarning
from tests.conftest import image_samples, text_samples


def _cosine(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)


@pytest.fixture
def bf16_is_fast(monkeypatch):
    """Pretend the CPU probe found bfloat16 faster (the numerics are real)."""
    monkeypatch.setattr(_precision, "cpu_bfloat16_speedup", lambda: 2.5)


@pytest.fixture
def bf16_is_slow(monkeypatch):
    monkeypatch.setattr(_precision, "cpu_bfloat16_speedup", lambda: 0.02)


# Without the embedding cache: these tests compare what the model computes, and
# a float32 fallback shares its cache key with float32 (the cache would answer).
def _text(tiny_text_model, **kwargs):
    return TextEncoder(tiny_text_model, batch_size=5, progress=False, cache=None, **kwargs)


def _image(tiny_image_weights, **kwargs):
    return ImageEncoder(
        "test_efficientnet",
        weights=tiny_image_weights,
        batch_size=5,
        image_size=32,
        progress=False,
        cache=None,
        **kwargs,
    )


# ----------------------------------------------------------------- precision
def test_default_precision_is_auto_and_float32_without_native_bfloat16(tiny_text_model):
    enc = _text(tiny_text_model).fit()
    assert enc.precision == "auto" and enc.precision_ == "float32"
    assert "SKTRANSFER_BFLOAT16=0" in enc.precision_.reason


def test_text_bfloat16_is_close_to_float32(tiny_text_model, bf16_is_fast):
    texts, _ = text_samples(40)
    exact = _text(tiny_text_model).fit().transform(texts)
    enc = _text(tiny_text_model, precision="bfloat16").fit()
    assert enc.precision_ == "bfloat16"
    fast = enc.transform(texts)
    assert fast.dtype == np.float32 and fast.shape == exact.shape
    assert not np.array_equal(fast, exact)  # bfloat16 really ran
    cos = _cosine(fast, exact)
    assert cos.mean() > 0.999 and cos.min() > 0.99


def test_image_bfloat16_is_close_to_float32(tiny_image_weights, bf16_is_fast):
    images, _ = image_samples(12)
    exact = _image(tiny_image_weights).fit().transform(images)
    enc = _image(tiny_image_weights, precision="bfloat16").fit()
    assert enc.precision_ == "bfloat16"
    fast = enc.transform(images)
    assert fast.dtype == np.float32
    assert not np.array_equal(fast, exact)
    cos = _cosine(fast, exact)
    assert cos.mean() > 0.99 and cos.min() > 0.98


@pytest.mark.parametrize("make", [_text, _image])
def test_slow_bfloat16_warns_and_falls_back(
    make, tiny_text_model, tiny_image_weights, bf16_is_slow
):
    model = tiny_text_model if make is _text else tiny_image_weights
    exact = make(model).fit()
    enc = make(model, precision="bfloat16")
    with pytest.warns(PrecisionWarning, match="bfloat16 runs at 0.02x the speed of float32"):
        enc.fit()
    assert enc.precision_ == "float32"
    assert enc.get_params()["precision"] == "bfloat16"  # the parameter is not rewritten
    X = text_samples(6)[0] if make is _text else image_samples(6)[0]
    np.testing.assert_array_equal(enc.transform(X), exact.transform(X))


def test_float16_on_cpu_warns_and_falls_back(tiny_text_model):
    enc = _text(tiny_text_model, precision="float16")
    with pytest.warns(PrecisionWarning, match="float16 is offered on CUDA only"):
        enc.fit()
    assert enc.precision_ == "float32"


def test_unknown_precision_is_rejected_at_fit(tiny_text_model):
    with pytest.raises(ValueError, match="precision"):
        _text(tiny_text_model, precision="int8").fit()


def test_cuda_precisions(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("float16", "cuda:0") == "float16"
    with pytest.warns(PrecisionWarning, match="does not support bfloat16"):
        assert resolve_precision("bfloat16", "cuda:0") == "float32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("bfloat16", "cuda:0") == "bfloat16"


def test_the_probe_returns_a_positive_ratio():
    _precision.cpu_bfloat16_speedup.cache_clear()
    ratio = _precision.cpu_bfloat16_speedup()
    assert ratio > 0 and np.isfinite(ratio)


# ------------------------------------------------------------------ threads
def test_n_threads_applies_during_transform_only(tiny_text_model, monkeypatch):
    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    enc = _text(tiny_text_model, n_threads=target).fit()
    assert torch.get_num_threads() == before  # fit does not touch it
    seen = []
    original = enc.model_.forward

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(enc.model_, "forward", spy)
    enc.transform(text_samples(8)[0])
    assert seen and set(seen) == {target}
    assert torch.get_num_threads() == before


def test_n_threads_restored_after_an_exception(tiny_image_weights, monkeypatch):
    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    enc = _image(tiny_image_weights, n_threads=target).fit()

    def boom(*args, **kwargs):
        assert torch.get_num_threads() == target
        raise RuntimeError("forward failed")

    monkeypatch.setattr(enc._runner(), "forward", boom)  # what runs the forward pass
    with pytest.raises(RuntimeError, match="forward failed"):
        enc.transform(image_samples(3)[0])
    assert torch.get_num_threads() == before


def test_n_threads_none_leaves_torch_alone(monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    with torch_threads(None):
        pass
    assert calls == []


def test_resolve_n_threads(monkeypatch):
    monkeypatch.setattr("joblib.cpu_count", lambda: 8)
    assert resolve_n_threads(None) is None
    assert resolve_n_threads(3) == 3
    assert resolve_n_threads(-1) == 8
    assert resolve_n_threads(-2) == 7
    assert resolve_n_threads(-20) == 1


@pytest.mark.parametrize("bad", [0, 1.5, "4"])
def test_bad_n_threads_is_rejected_at_fit(tiny_text_model, bad):
    with pytest.raises(ValueError, match="n_threads"):
        _text(tiny_text_model, n_threads=bad).fit()


# ------------------------------------------------------------- channels-last
def test_image_model_runs_channels_last_with_the_same_numbers(tiny_image_weights):
    import timm
    import timm.data
    from PIL import Image

    enc = _image(tiny_image_weights).fit()
    conv = next(m for m in enc.model_.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    images, _ = image_samples(7)
    ours = enc.transform(images)

    # The plain NCHW forward of the same weights.
    reference_model = timm.create_model("test_efficientnet", pretrained=False, num_classes=0)
    state = {k: v.contiguous() for k, v in enc.model_.state_dict().items()}
    reference_model.load_state_dict(state)
    reference_model.eval()
    transform = timm.data.create_transform(**enc.data_config_, is_training=False)
    batch = torch.stack([transform(Image.fromarray(img)) for img in images])
    with torch.inference_mode():
        expected = reference_model(batch).numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------- allocator
def test_allocator_plan_raises_both_thresholds_by_default():
    plan = _malloc.plan_malloc_tuning({}, is_glibc=True)
    assert plan == {
        "mmap_threshold": _malloc.SETTINGS["mmap_threshold"][2],
        "trim_threshold": _malloc.SETTINGS["trim_threshold"][2],
    }


@pytest.mark.parametrize("value", ["0", "false", "off", "no", " OFF "])
def test_allocator_opt_out(value):
    assert _malloc.plan_malloc_tuning({"SKTRANSFER_TUNE_MALLOC": value}, is_glibc=True) == {}


@pytest.mark.parametrize(
    "environ, kept",
    [
        ({"MALLOC_MMAP_THRESHOLD_": "131072"}, "mmap_threshold"),  # lower than ours: kept
        ({"MALLOC_TRIM_THRESHOLD_": str(2**34)}, "trim_threshold"),  # higher: kept too
        ({"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=65536"}, "mmap_threshold"),
    ],
)
def test_allocator_never_touches_a_user_setting(environ, kept):
    plan = _malloc.plan_malloc_tuning(environ, is_glibc=True)
    assert kept not in plan and len(plan) == 1


def test_allocator_does_nothing_without_glibc():
    assert _malloc.plan_malloc_tuning({}, is_glibc=False) == {}


def test_allocator_is_tuned_once_on_first_cpu_transform(tiny_text_model, monkeypatch):
    calls = []
    monkeypatch.setattr(_malloc, "_applied", None)
    monkeypatch.setattr(_malloc, "_is_glibc", lambda: True)
    monkeypatch.setattr(_malloc, "_mallopt", lambda param, value: calls.append(param) or True)
    monkeypatch.delenv("SKTRANSFER_TUNE_MALLOC", raising=False)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    enc = _text(tiny_text_model).fit()
    assert calls == []  # not on import, not in fit
    enc.transform(["a great movie"])
    enc.transform(["bad"])
    assert sorted(calls) == sorted([_malloc.M_MMAP_THRESHOLD, _malloc.M_TRIM_THRESHOLD])


def test_allocator_opt_out_through_the_environment(tiny_text_model, monkeypatch):
    calls = []
    monkeypatch.setattr(_malloc, "_applied", None)
    monkeypatch.setattr(_malloc, "_is_glibc", lambda: True)
    monkeypatch.setattr(_malloc, "_mallopt", lambda param, value: calls.append(param) or True)
    monkeypatch.setenv("SKTRANSFER_TUNE_MALLOC", "0")
    _text(tiny_text_model).fit().transform(["a great movie"])
    assert calls == [] and _malloc.tune_malloc() == {}
