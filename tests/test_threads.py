"""Encoders that share a loaded network, used from several threads at once."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.base import clone

from sktransfer import TextEncoder


def test_encoders_sharing_a_network_encode_one_at_a_time(tiny_text_model, monkeypatch):
    # A fast tokenizer's padding/truncation state is shared: two threads encoding
    # with one network at once broke batches ("expected sequence of length 8").
    first = TextEncoder(tiny_text_model, cache=None, progress=False).fit()
    second = clone(first).fit()
    assert first._network is second._network  # the shared loaded network
    original = TextEncoder._encode
    state = {"inside": 0, "most": 0}
    guard = threading.Lock()

    def encode(self, *args, **kwargs):
        with guard:
            state["inside"] += 1
            state["most"] = max(state["most"], state["inside"])
        time.sleep(0.05)
        try:
            return original(self, *args, **kwargs)
        finally:
            with guard:
                state["inside"] -= 1

    monkeypatch.setattr(TextEncoder, "_encode", encode)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda enc: enc.transform(["a b", "c"]), [first, second] * 4))
    assert state["most"] == 1


def test_threaded_transforms_equal_the_sequential_ones(tiny_text_model):
    encoder = TextEncoder(tiny_text_model, cache=None, progress=False).fit()
    batches = [[f"word {'x ' * (i + j)}" for j in range(5)] for i in range(8)]
    expected = [encoder.transform(batch) for batch in batches]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(encoder.transform, batches))
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)
