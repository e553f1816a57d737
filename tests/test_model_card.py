"""``save`` writes a model card (README.md) that describes the fine-tuned model."""

from __future__ import annotations

import shutil

import numpy as np

from sktransfer.finetune import ImageRegressor, TextClassifier
from tests.finetune_helpers import FAST, toy_images, toy_texts

BASE_CARD = """---
license: mit
language: en
---

# A tiny base model

The base model's own description, which must not become the fine-tuned model's card.
"""


def test_a_text_classifier_card(tiny_text_model, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(tiny_text_model, base)
    (base / "README.md").write_text(BASE_CARD)
    X, y = toy_texts(16)
    labels = np.where(y == 1, "pos", "neg")
    params = {**FAST, "epochs": 3, "early_stopping": True, "validation_fraction": 0.25}
    clf = TextClassifier(str(base), n_iter_no_change=5, **params).fit(X, labels)
    clf.save(tmp_path / "saved")
    card = (tmp_path / "saved" / "README.md").read_text()
    assert card.startswith(f"# TextClassifier fine-tuned from {base}\n")
    assert "Classification of texts into 2 classes: `neg`, `pos`." in card
    assert "16 samples, of which 4 held out for validation; 12 trained on." in card
    assert (clf.n_train_samples_, clf.n_validation_samples_) == (12, 4)
    assert f"The weights are those of epoch {clf.best_epoch_}." in card
    assert "| epoch | training loss | validation accuracy |" in card
    for record in clf.history_:
        row = f"| {record['epoch']} | {record['train_loss']:.4f} | {record['valid_score']:.4f} |"
        assert row in card
    assert "- License: mit" in card
    assert f"- Loaded from: `{clf.model_reference_}` (local)" in card
    assert "| `epochs` | `3` |" in card and "| `learning_rate` | `0.01` |" in card
    assert "The base model's own description" not in card
    assert not (tmp_path / "saved" / "body" / "README.md").exists()
    assert TextClassifier.load(tmp_path / "saved").n_train_samples_ == 12


def test_an_image_regressor_card_without_validation(tiny_image_weights, tmp_path):
    X, y = toy_images(10)
    reg = ImageRegressor(
        "test_efficientnet", weights=tiny_image_weights, image_size=32, **FAST
    ).fit(X, y * 2.0 - 1.0)
    reg.save(tmp_path / "saved")
    card = (tmp_path / "saved" / "README.md").read_text()
    assert card.startswith("# ImageRegressor fine-tuned from test_efficientnet\n")
    assert "Regression of images onto one target." in card
    assert "10 samples; 10 trained on." in card
    assert "No validation split (`early_stopping=False`): training losses only." in card
    assert "| epoch | training loss |\n|---|---|\n| 1 |" in card
    # A weights file of the user's: timm's configuration does not describe its license.
    assert "- License: unknown" in card
    assert f"| `weights` | `{tiny_image_weights!r}` |" in card
