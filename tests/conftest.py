"""Shared fixtures: tiny models built on the fly, seeded tests, offline Hub."""

from __future__ import annotations

import inspect
import random

import numpy as np
import pytest

TINY_WORDS = (
    "the a an movie film book great awful good bad superb terrible boring fun cat dog "
    "sat on mat is was very not and it this that i love hate like"
).split()


@pytest.fixture(autouse=True)
def _fresh_caches():
    """Each test starts with an empty embedding cache and no shared networks."""
    from sktransfer._base import LOADED_NETWORKS
    from sktransfer.cache import clear_cache

    clear_cache()
    LOADED_NETWORKS.clear()
    yield
    clear_cache()
    LOADED_NETWORKS.clear()


@pytest.fixture(autouse=True, scope="session")
def _no_native_bfloat16():
    """``precision="auto"`` and ``mixed_precision="auto"`` pick float32 on every test CPU.

    The numbers a test checks must not depend on the machine's instruction set;
    tests of the bfloat16 path patch ``native_bfloat16`` themselves. An
    environment variable, so that subprocesses and joblib workers agree, set for
    the whole session so that module-scoped fixtures see it too.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SKTRANSFER_BFLOAT16", "0")
        yield


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)  # noqa: NPY002 - seeds code that uses the legacy global RNG
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.manual_seed(0)


def build_tiny_sentence_transformer(folder) -> str:
    """Save a 2-layer, 32-wide BERT as a sentence-transformers folder; return its path."""
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import BertConfig, BertModel, BertTokenizer

    try:
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.models import Pooling, Transformer

    hf_dir = folder / "hf"
    hf_dir.mkdir(parents=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = specials + sorted(set(TINY_WORDS)) + list("abcdefghijklmnopqrstuvwxyz0123456789.,!?")
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    if "vocab" in inspect.signature(BertTokenizer.__init__).parameters:  # transformers >= 5
        tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    else:
        tokenizer = BertTokenizer(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    assert tokenizer.tokenize("a great movie") == ["a", "great", "movie"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        config = BertConfig(
            vocab_size=len(vocab),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
        )
        BertModel(config).save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    word = Transformer(str(hf_dir), max_seq_length=48)
    pooling = Pooling(32, "mean")
    st_dir = folder / "st"
    SentenceTransformer(modules=[word, pooling], device="cpu").save(str(st_dir))
    return str(st_dir)


@pytest.fixture(scope="session")
def tiny_text_model(tmp_path_factory) -> str:
    """Path of a tiny sentence-transformers model (32-dim embeddings)."""
    return build_tiny_sentence_transformer(tmp_path_factory.mktemp("tiny-text"))


@pytest.fixture(scope="session")
def tiny_image_weights(tmp_path_factory) -> str:
    """A state-dict file for timm's ``test_efficientnet`` (a tiny architecture)."""
    import timm
    import torch
    from safetensors.torch import save_file

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        model = timm.create_model("test_efficientnet", pretrained=False)
    path = tmp_path_factory.mktemp("tiny-image") / "test_efficientnet.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return str(path)


def text_samples(n: int = 24):
    """Short texts from the tiny vocabulary with a learnable binary label."""
    positive = ["a great movie", "i love this film", "good fun", "a superb book", "i like it"]
    negative = ["an awful movie", "i hate this film", "very boring", "a terrible book", "bad"]
    texts, labels = [], []
    for i in range(n):
        pool, label = (positive, 1) if i % 2 == 0 else (negative, 0)
        texts.append(f"{pool[(i // 2) % len(pool)]} {TINY_WORDS[i % len(TINY_WORDS)]}")
        labels.append(label)
    return texts, np.asarray(labels)


def image_samples(n: int = 24, size: int = 40):
    """Small uint8 RGB arrays: bright images (label 1) and dark ones (label 0)."""
    rng = np.random.default_rng(0)
    images, labels = [], []
    for i in range(n):
        label = i % 2
        base = 180 if label else 60
        img = np.clip(rng.normal(base, 25, size=(size, size, 3)), 0, 255).astype(np.uint8)
        images.append(img)
        labels.append(label)
    return images, np.asarray(labels)


def tiny_image_classifier(weights: str, **params):
    """A one-epoch ImageClassifier on the tiny EfficientNet built in the test session.

    ``weights`` is the ``tiny_image_weights`` fixture; ``params`` override the
    small, fast defaults (32 px, batch 4, seed 0).
    """
    from sktransfer import ImageClassifier

    fast = {"image_size": 32, "epochs": 1, "batch_size": 4, "random_state": 0}
    return ImageClassifier("test_efficientnet", weights=weights, **{**fast, **params})
