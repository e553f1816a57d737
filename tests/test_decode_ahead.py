"""Decoding images one batch ahead of the forward pass, or between forward passes.

Where torch's forward pass runs on every core of a CPU, decoding alongside it
only takes turns with the OpenMP threads; the encoders then decode each batch
when they reach it, with every decoding thread (``sktransfer._threads.decode_ahead``).
``iter_decoded_batches(ahead=False)`` itself is tested in ``test_image_io.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sktransfer import ImageEncoder, _threads  # noqa: E402
from sktransfer._adapters import image as image_adapter  # noqa: E402
from tests.conftest import image_samples, tiny_image_classifier  # noqa: E402


def test_decode_ahead_only_where_the_forward_pass_leaves_cores_idle(monkeypatch):
    monkeypatch.setattr(_threads, "cpu_count", lambda: 4)
    with _threads.torch_threads(4):
        assert _threads.decode_ahead("cpu") is False  # every core runs the forward pass
        assert _threads.decode_ahead("cuda") is True  # the forward pass runs on the GPU
    with _threads.torch_threads(2):
        assert _threads.decode_ahead("cpu") is True
    monkeypatch.setattr(_threads, "cpu_count", lambda: 1)
    with _threads.torch_threads(1):
        assert _threads.decode_ahead("cpu") is False


class _Spy:
    """Record the ``ahead`` of every decoding the image adapter starts."""

    def __init__(self, monkeypatch):
        self.ahead: list[bool] = []
        original = image_adapter.iter_decoded_batches

        def spying(*args, **kwargs):
            self.ahead.append(kwargs["ahead"])
            return original(*args, **kwargs)

        monkeypatch.setattr(image_adapter, "iter_decoded_batches", spying)


@pytest.mark.parametrize("cores", [1, 64])
def test_the_image_encoder_decodes_ahead_only_with_idle_cores(cores, monkeypatch):
    encoder = ImageEncoder(cache=None, precision="float32", n_threads=1).fit()
    photos = [image for image in image_samples(10)[0]]
    monkeypatch.setattr(_threads, "cpu_count", lambda: cores)
    spy = _Spy(monkeypatch)
    got = encoder.set_params(batch_size=4).transform(photos)
    # One forward thread: with 64 cores most are idle (ahead); with 1 none is.
    assert spy.ahead == [cores > 1]
    # The features do not depend on when the images were decoded.
    monkeypatch.setattr(_threads, "cpu_count", lambda: 65 - cores)
    np.testing.assert_array_equal(got, encoder.transform(photos))
    assert spy.ahead == [cores > 1, cores == 1]


def test_fine_tuner_predictions_decode_ahead_only_with_idle_cores(tiny_image_weights, monkeypatch):
    X, y = image_samples(12)
    clf = tiny_image_classifier(tiny_image_weights).fit(X, y)
    clf.predict_proba(X[:2])  # the inference copy is made (and checked on the probe photos)
    spy = _Spy(monkeypatch)
    with _threads.torch_threads(1):
        monkeypatch.setattr(_threads, "cpu_count", lambda: 1)
        serial = clf.predict_proba(X)
        monkeypatch.setattr(_threads, "cpu_count", lambda: 8)
        ahead = clf.predict_proba(X)
    assert spy.ahead == [False, True]
    np.testing.assert_array_equal(serial, ahead)


def test_the_onnx_backend_decodes_ahead(tmp_path, monkeypatch):
    # ONNX Runtime shares the cores with the decoding threads better than
    # torch's OpenMP threads do (benchmarks.thread_split): it keeps decoding ahead.
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from sktransfer import _onnx

    monkeypatch.setenv("SKTRANSFER_DATA", str(tmp_path / "data"))
    _onnx.clear_runners()
    params = {"pretrained": False, "image_size": 32, "cache": None, "progress": False}
    encoder = ImageEncoder("test_convnext", backend="onnx", **params).fit()
    monkeypatch.setattr(_threads, "cpu_count", lambda: 1)
    spy = _Spy(monkeypatch)
    encoder.transform(image_samples(5)[0])
    _onnx.clear_runners()
    assert spy.ahead == [True]
