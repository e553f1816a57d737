"""The fixed computations whose outputs are stored in tests/data/reference_*.

Shared by ``tests/data/make_reference.py`` (which stores them) and
``tests/test_reference.py`` (which recomputes and compares them bit for bit), so
that a refactoring that changes any number -- features, predictions, training
losses -- fails a test. Everything runs with ``cache=None`` on one torch thread
(matrix products may split their sums differently with more threads).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data"

SENTENCES = [
    "A man is playing a guitar.",
    "The stock market fell sharply today.",
    "I loved this film, the acting was wonderful!",
    "",
    "A man is playing a guitar.",  # a duplicate: encoded once, same row
    " ".join(["a very long sentence about the weather"] * 60),  # cut at 256 tokens
]


def machine() -> dict:
    """What decides the last bits of the outputs: the torch version and CPU kernel level."""
    import torch

    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()}


@contextlib.contextmanager
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _images():
    from sklearn.datasets import load_sample_images

    photos = [photo[::4, ::4] for photo in load_sample_images().images]  # 107 x 160
    rng = np.random.default_rng(0)
    return photos + [rng.integers(0, 256, (40, 30, 3), dtype=np.uint8), rng.random((24, 24))]


def _toy_images(n: int = 16, size: int = 24):
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 2
    images = [
        np.clip(rng.normal(170 if label else 80, 30, (size, size, 3)), 0, 255).astype(np.uint8)
        for label in labels
    ]
    return images, labels


def text_encoder():
    from sktransfer import TextEncoder
    from sktransfer.exceptions import TruncationWarning

    encoder = TextEncoder(cache=None, progress=False).fit()
    with _ignore(TruncationWarning):
        plain = encoder.transform(SENTENCES)
        chunked = encoder.set_params(long_texts="chunk").transform(SENTENCES)
    return encoder.set_params(long_texts="truncate"), {"features": plain, "chunked": chunked}


def image_encoder():
    from sktransfer import ImageEncoder

    encoder = ImageEncoder(cache=None, progress=False).fit()
    small = ImageEncoder(cache=None, progress=False, image_size=64).fit()
    images = _images()
    return encoder, {"features": encoder.transform(images), "small": small.transform(images)}


def text_classifier():
    from sktransfer import TextClassifier

    texts = [
        "a great film",
        "loved it",
        "superb acting",
        "what a joy",
        "an awful film",
        "hated it",
        "dreadful acting",
        "what a bore",
    ]
    labels = [1, 1, 1, 1, 0, 0, 0, 0]
    clf = TextClassifier(
        trainable_blocks=1, epochs=2, batch_size=4, learning_rate=1e-3, random_state=0, verbose=0
    ).fit(texts, labels)
    return clf, {
        "proba": clf.predict_proba(["a superb film", "an awful bore", "fine"]),
        "losses": _losses(clf),
    }


def image_classifier():
    from sktransfer import ImageClassifier
    from sktransfer.exceptions import UnderfitWarning

    images, labels = _toy_images()
    clf = ImageClassifier(
        "test_efficientnet",
        pretrained=False,
        image_size=32,
        augmentation="light",
        trainable_blocks=1,
        unfreeze_every=1,
        early_stopping=True,
        validation_fraction=0.25,
        epochs=3,
        batch_size=4,
        learning_rate=1e-2,
        random_state=0,
        verbose=0,
    )
    with _ignore(UnderfitWarning):  # 16 random-weight samples: a deliberately tiny fit
        clf.fit(images, labels)
    return clf, {"proba": clf.predict_proba(images), "losses": _losses(clf)}


def image_regressor():
    from sktransfer import ImageRegressor

    images, labels = _toy_images()
    target = labels * 2.0 + np.linspace(0, 1, len(labels))
    reg = ImageRegressor(
        "test_efficientnet",
        pretrained=False,
        image_size=32,
        trainable_blocks=0,
        epochs=2,
        batch_size=4,
        learning_rate=1e-2,
        random_state=0,
        verbose=0,
    ).fit(images, target)
    return reg, {"predict": reg.predict(images), "losses": _losses(reg)}


def _losses(estimator) -> np.ndarray:
    return np.asarray(
        [
            (r["train_loss"], np.nan if r["valid_score"] is None else r["valid_score"])
            for r in estimator.history_
        ]
    )


@contextlib.contextmanager
def _ignore(category):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category)
        yield


CASES = {
    "text_encoder": text_encoder,
    "image_encoder": image_encoder,
    "text_classifier": text_classifier,
    "image_classifier": image_classifier,
    "image_regressor": image_regressor,
}
