"""Toy data and tiny-model factories shared by the fine-tuning tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sktransfer.finetune._loop import TrainingLoop

POSITIVE = ("great", "good", "superb", "fun", "love", "like")
NEGATIVE = ("awful", "bad", "terrible", "boring", "hate", "not")
ANIMALS = ("cat", "dog", "sat", "mat", "on", "very")
FILLER = ("the", "a", "movie", "film", "book", "it", "this", "that")

# Small batches and a high learning rate: a few epochs on a few samples learn something.
FAST = {"epochs": 2, "batch_size": 8, "learning_rate": 1e-2, "random_state": 0}


def toy_texts(n: int, seed: int = 0, n_classes: int = 2):
    """Four-word sentences; class c draws its key words from its own vocabulary."""
    pools = (NEGATIVE, POSITIVE, ANIMALS)[:n_classes]
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        label = i % n_classes
        pool = pools[label]
        words = [rng.choice(FILLER), rng.choice(pool), rng.choice(FILLER), rng.choice(pool)]
        texts.append(" ".join(words))
        labels.append(label)
    return texts, np.asarray(labels)


def toy_images(n: int, seed: int = 0, size: int = 24):
    """Noisy uint8 RGB images: bright ones (label 1) and dark ones (label 0)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = [
        np.clip(rng.normal(170 if label else 80, 30, (size, size, 3)), 0, 255).astype(np.uint8)
        for label in labels
    ]
    return images, labels


def brightness_images(n: int, seed: int = 0, size: int = 24):
    """Images of uniform random brightness in [0.15, 0.85] (the target) plus noise."""
    rng = np.random.default_rng(seed)
    brightness = rng.uniform(0.15, 0.85, n)
    images = [
        np.clip(rng.normal(b * 255, 10, (size, size, 3)), 0, 255).astype(np.uint8)
        for b in brightness
    ]
    return images, brightness


def text_estimator(cls, model: str, **params):
    """A fine-tuning text estimator on the tiny BERT, fast settings."""
    return cls(model, **{**FAST, **params})


def image_estimator(cls, weights: str, **params):
    """A fine-tuning image estimator on timm's ``test_efficientnet``, 32-pixel inputs."""
    return cls("test_efficientnet", weights=weights, image_size=32, **{**FAST, **params})


def spy_on_loops(monkeypatch) -> list:
    """Record every TrainingLoop that runs, with its ``train`` and ``valid`` splits."""
    loops = []
    original = TrainingLoop.fit

    def fit(self, train, valid):
        self.spied_train, self.spied_valid = train, valid
        loops.append(self)
        return original(self, train, valid)

    monkeypatch.setattr(TrainingLoop, "fit", fit)
    return loops


def state_copy(module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models run fastest on one thread (the cores may be shared)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
