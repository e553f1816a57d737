"""precision="auto": bfloat16 only where native and where a numerics probe agrees.

The capability probe (``_precision.native_bfloat16``) is mocked both ways; the
numerics are real (tiny models), or replaced by a probe that disagrees.
"""

from __future__ import annotations

import pickle
import re
import warnings

import numpy as np
import pytest
from sklearn.base import clone

from sktransfer import ImageEncoder, TextClassifier, TextEncoder, _precision
from sktransfer._precision import Precision, resolve_auto
from tests.conftest import image_samples, text_samples


@pytest.fixture
def native(monkeypatch):
    """Pretend the device computes bfloat16 natively."""
    monkeypatch.setattr(_precision, "native_bfloat16", lambda device: (True, "native (mocked)"))


def _text(model, **kwargs):
    return TextEncoder(model, batch_size=8, progress=False, cache=None, **kwargs)


def _image(weights, **kwargs):
    params = dict(weights=weights, image_size=32, batch_size=8, progress=False, cache=None)
    return ImageEncoder("test_efficientnet", **{**params, **kwargs})


def _count_probes(monkeypatch):
    """The precisions the text encoder's numerics probe runs, in order."""
    calls = []
    real = TextEncoder._precision_probe

    def counting(self, network):
        probe = real(self, network)

        def counted(precision):
            calls.append(precision)
            return probe(precision)

        return counted

    monkeypatch.setattr(TextEncoder, "_precision_probe", counting)
    return calls


# ------------------------------------------------------------ the decision
def test_without_native_bfloat16_auto_is_float32_and_runs_no_probe(tiny_text_model, monkeypatch):
    calls = _count_probes(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "auto" explains itself in precision_, not in a warning
        enc = _text(tiny_text_model).fit()
    assert enc.precision_ == "float32"
    assert enc.precision_.reason == "auto: SKTRANSFER_BFLOAT16=0 in the environment"
    assert calls == []


def test_with_native_bfloat16_auto_is_bfloat16_when_the_probe_agrees(
    tiny_text_model, native, monkeypatch
):
    calls = _count_probes(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        enc = _text(tiny_text_model).fit()
    assert enc.precision_ == "bfloat16"
    assert "agrees with float32" in enc.precision_.reason
    assert re.search(r"mean cosine (0\.99|1\.00)\d+ >= 0\.999", enc.precision_.reason)
    assert calls == ["float32", "bfloat16"]
    # The probe runs once per loaded network: a clone sharing it does not probe again.
    assert clone(enc).fit().precision_ == "bfloat16"
    assert calls == ["float32", "bfloat16"]
    exact = _text(tiny_text_model, precision="float32").fit()
    texts, _ = text_samples(20)
    a, b = enc.transform(texts), exact.transform(texts)
    assert not np.array_equal(a, b)  # bfloat16 really ran
    cos = np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.99


def test_with_native_bfloat16_auto_is_float32_when_the_probe_disagrees(
    tiny_text_model, native, monkeypatch
):
    monkeypatch.setattr(_precision, "AUTO_MIN_COSINE", 1.5)  # no cosine can pass
    enc = _text(tiny_text_model).fit()
    assert enc.precision_ == "float32"
    assert "disagrees with float32" in enc.precision_.reason


def test_resolve_auto_compares_the_probe_outputs(native):
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(6, 16))
    close = {"float32": reference, "bfloat16": reference + 1e-4 * rng.normal(size=(6, 16))}
    far = {"float32": reference, "bfloat16": rng.normal(size=(6, 16))}
    nan = {"float32": reference, "bfloat16": np.full((6, 16), np.nan)}
    assert resolve_auto("cpu", close.__getitem__) == "bfloat16"
    assert resolve_auto("cpu", far.__getitem__) == "float32"
    assert resolve_auto("cpu", nan.__getitem__) == "float32"
    assert "no numerics probe" in resolve_auto("cpu", None).reason


def test_native_bfloat16_reads_the_cpu_flags(monkeypatch):
    monkeypatch.delenv("SKTRANSFER_BFLOAT16")  # set for every test by conftest
    flags = {"avx2": True, "avx512_bf16": False, "amx_bf16": False}
    monkeypatch.setattr(_precision, "cpu_capabilities", lambda: dict(flags))
    native, why = _precision.native_bfloat16("cpu")
    assert not native and "neither AVX-512 BF16 nor AMX" in why
    flags["amx_bf16"] = True
    assert _precision.native_bfloat16("cpu") == (True, "the CPU has AMX")
    assert _precision.native_bfloat16("mps")[0] is False


def test_image_encoder_auto_probes_the_sample_photos(tiny_image_weights, native):
    enc = _image(tiny_image_weights).fit()
    assert enc.precision_ in ("bfloat16", "float32")
    assert "probe batch (mean cosine" in enc.precision_.reason
    images, _ = image_samples(6)
    assert enc.transform(images).dtype == np.float32


# ------------------------------------------------------- cache key, pickling
def test_cache_key_uses_the_resolved_precision(tiny_text_model, native, monkeypatch):
    monkeypatch.setattr(_precision, "cpu_bfloat16_speedup", lambda: 2.5)
    auto = _text(tiny_text_model).fit()
    assert auto.precision_ == "bfloat16"
    explicit = _text(tiny_text_model, precision="bfloat16").fit()
    exact = _text(tiny_text_model, precision="float32").fit()
    assert auto.model_fingerprint_ == explicit.model_fingerprint_
    assert auto.model_fingerprint_ != exact.model_fingerprint_
    monkeypatch.setattr(_precision, "AUTO_MIN_COSINE", 1.5)
    fallback = clone(auto).set_params(batch_size=4).fit()  # another load: probes again
    assert fallback.precision_ == "float32"
    assert fallback.model_fingerprint_ == exact.model_fingerprint_


def test_precision_pickles_with_its_reason(tiny_text_model):
    enc = _text(tiny_text_model).fit()
    back = pickle.loads(pickle.dumps(enc))
    assert back.precision == "auto"
    assert back.precision_ == "float32" and back.precision_.reason == enc.precision_.reason
    p = Precision("bfloat16", "why")
    assert pickle.loads(pickle.dumps(p)).reason == "why"
    assert str(p) == "bfloat16" and type(str(p)) is str


# ------------------------------------------------------------- fine-tuners
def test_finetuner_auto_probes_the_trained_body(tiny_text_model, native):
    X, y = text_samples(20)
    clf = TextClassifier(
        tiny_text_model, trainable_blocks=0, epochs=4, learning_rate=1e-2, random_state=0
    )
    clf.fit(X, y)
    assert clf.precision_ == "bfloat16"
    assert "agrees with float32" in clf.precision_.reason
    exact = clone(clf).set_params(precision="float32").fit(X, y)
    np.testing.assert_allclose(clf.predict_proba(X), exact.predict_proba(X), atol=0.05)


# ------------------------------------------------------------ few-shot classifier
def _fewshot(model, **params):
    from sktransfer import FewShotTextClassifier

    fast = {"batch_size": 8, "learning_rate": 1e-3, "pairs_per_sample": 8, "random_state": 0}
    return FewShotTextClassifier(model, verbose=0, **{**fast, **params})


def test_fewshot_auto_is_float32_without_native_bfloat16(tiny_text_model):
    X, y = text_samples(16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf = _fewshot(tiny_text_model).fit(X, y)
    assert clf.get_params()["precision"] == "auto"
    assert clf.precision_ == "float32"
    assert clf.precision_.reason == "auto: SKTRANSFER_BFLOAT16=0 in the environment"


def test_fewshot_auto_probes_the_tuned_body(tiny_text_model, native, monkeypatch):
    import sktransfer._base as base

    probed = []
    real = base.precision_probe

    def recording(body, adapter, device):
        probed.append(body)
        return real(body, adapter, device)

    monkeypatch.setattr(base, "precision_probe", recording)
    X, y = text_samples(16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf = _fewshot(tiny_text_model).fit(X, y)
    assert clf.precision_ == "bfloat16"
    assert "agrees with float32" in clf.precision_.reason
    assert probed == [clf._body]  # the tuned body, once, after training
    # Embeddings (head and predictions) really ran in bfloat16: the same training
    # with precision="float32" embeds differently, by rounding only.
    exact = clone(clf).set_params(precision="float32").fit(X, y)
    assert exact.precision_ == "float32" and len(probed) == 1  # an explicit precision: no probe
    a, b = clf.embed(X), exact.embed(X)
    assert not np.array_equal(a, b)
    cos = np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.99


def test_fewshot_auto_is_float32_when_the_probe_disagrees(tiny_text_model, native, monkeypatch):
    monkeypatch.setattr(_precision, "AUTO_MIN_COSINE", 1.5)
    X, y = text_samples(16)
    clf = _fewshot(tiny_text_model).fit(X, y)
    assert clf.precision_ == "float32"
    assert "disagrees with float32" in clf.precision_.reason


def test_fewshot_load_and_unpickle_resolve_auto_on_the_tuned_body(
    tiny_text_model, native, tmp_path
):
    from sktransfer import FewShotTextClassifier

    X, y = text_samples(16)
    clf = _fewshot(tiny_text_model).fit(X, y)
    clf.save(tmp_path / "saved")
    loaded = FewShotTextClassifier.load(tmp_path / "saved", device="cpu")
    assert loaded.precision_ == "bfloat16" and "agrees" in loaded.precision_.reason
    np.testing.assert_array_equal(loaded.embed(X), clf.embed(X))
    unpickled = pickle.loads(pickle.dumps(clf))
    assert unpickled.precision_ == "bfloat16"
    np.testing.assert_array_equal(unpickled.embed(X), clf.embed(X))
