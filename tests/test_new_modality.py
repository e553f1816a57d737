"""A new modality is one adapter (numeric sequences, a tiny torch body) and two 3-line classes:
a frozen encoder (cache, pickling, names) and a fine-tuner (blocks, loop, pickling) follow."""

import pickle

import numpy as np
import pytest
import torch
from torch import nn

from sktransfer._adapters import Adapter
from sktransfer._base import BaseEncoder
from sktransfer.cache import cache_info
from sktransfer.exceptions import InvalidInputError
from sktransfer.finetune._classifier import _FineTuneClassifier

LENGTH = 12


class TinySequenceBody(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.proj, self.num_features = nn.Conv1d(1, 8, 3, padding=1), nn.Linear(8, 6), 6

    def forward(self, batch):  # (n, LENGTH) -> (n, 6)
        return self.proj(torch.relu(self.conv(batch[:, None])).mean(dim=2))


class SequenceAdapter(Adapter):  # the one adapter of the new modality
    def __init__(self, model: str):
        self.model = model

    def check_X(self, X) -> list:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != LENGTH:
            raise InvalidInputError(f"expected sequences of length {LENGTH}, got shape {X.shape}")
        return list(X)

    def load(self, device, pretrained=True):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return TinySequenceBody().to(device), "random-init", self.model

    def collate(self, items, training):
        return torch.from_numpy(np.stack(items))

    def content_key(self, item) -> bytes:
        return item.tobytes()


class SequenceEncoder(BaseEncoder):  # registration: a frozen encoder ...
    def _make_adapter(self):
        return SequenceAdapter(self.model)


class SequenceClassifier(_FineTuneClassifier):  # ... and a fine-tuner
    def _make_adapter(self):
        return SequenceAdapter(self.model)


def sequences(n: int, seed: int = 0):  # rising (label 1) and falling (0) noisy ramps
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    ramps = np.linspace(-1, 1, LENGTH) * np.where(y == 1, 1.0, -1.0)[:, None]
    return (ramps + rng.normal(0, 0.3, (n, LENGTH))).astype(np.float32), y


def test_one_adapter_gives_a_working_frozen_encoder():
    X, _ = sequences(10)
    encoder = SequenceEncoder("tiny-seq", device="cpu", progress=False).fit(X)
    features = encoder.transform(X)
    with torch.inference_mode():
        expected = SequenceAdapter("tiny-seq").load("cpu")[0].eval()(torch.from_numpy(X)).numpy()
    assert features.dtype == np.float32 and np.array_equal(features, expected)
    encoder.transform(X)
    assert cache_info().hits == len(X)  # the second call is served from the cache
    restored = pickle.loads(pickle.dumps(encoder))
    assert np.array_equal(restored.set_params(cache=None).transform(X), features)
    assert list(encoder.get_feature_names_out())[:2] == ["sequenceencoder0", "sequenceencoder1"]
    with pytest.raises(InvalidInputError, match="length 12, got shape"):
        encoder.transform(X[:, :5])


def test_one_adapter_gives_a_working_fine_tuner():
    X, y = sequences(64)
    params = {"trainable_blocks": "all", "epochs": 8, "learning_rate": 3e-2, "batch_size": 8}
    clf = SequenceClassifier("tiny-seq", device="cpu", random_state=0, verbose=0, **params)
    clf.fit(X, y)
    assert clf.n_blocks_ == 2  # conv, then proj: the adapter's default blocks
    X_test, y_test = sequences(32, seed=1)
    assert clf.score(X_test, y_test) > 0.9
    proba = clf.predict_proba(X_test)
    restored = pickle.loads(pickle.dumps(clf))
    assert np.array_equal(restored.predict_proba(X_test), proba)
