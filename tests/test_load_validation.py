"""``load`` checks a saved folder before anything is predicted.

Each test writes a valid save, tampers with one thing and expects one
``SavedModelError`` naming the file and the field (or tensor).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import sktransfer.finetune
from sktransfer import ImageClassifier, TextClassifier, TextRegressor
from sktransfer.exceptions import InvalidInputError, SavedModelError
from tests.finetune_helpers import (
    image_estimator,
    one_torch_thread,  # noqa: F401  (an autouse fixture)
    text_estimator,
    toy_images,
    toy_texts,
)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, tiny_text_model, tiny_image_weights):
    """Valid saves of a text classifier, a text regressor and an image classifier."""
    root = tmp_path_factory.mktemp("saved")
    X, y = toy_texts(8)
    text_estimator(TextClassifier, tiny_text_model, epochs=1).fit(X, y).save(root / "clf")
    text_estimator(TextRegressor, tiny_text_model, epochs=1).fit(X, y * 1.0).save(root / "reg")
    images, labels = toy_images(8)
    image_estimator(ImageClassifier, tiny_image_weights, epochs=1).fit(images, labels).save(
        root / "img"
    )
    return root


@pytest.fixture
def copy_of(saved, tmp_path):
    copies = []

    def copy(name):
        copies.append(name)
        target = tmp_path / f"{name}-{len(copies)}"
        shutil.copytree(saved / name, target)
        return target

    return copy


def _edit_config(folder, edit) -> None:
    file = folder / "config.json"
    config = json.loads(file.read_text())
    edit(config)
    file.write_text(json.dumps(config))


def _edit_weights(folder, edit) -> None:
    file = folder / "weights.safetensors"
    state = load_file(str(file))
    edit(state)
    save_file({k: v.contiguous() for k, v in state.items()}, str(file))


def test_valid_saves_load(saved):
    X, _ = toy_texts(4)
    for name in ("clf", "reg", "img"):
        loaded = sktransfer.finetune.load(saved / name, device="cpu")
        assert loaded.__sklearn_is_fitted__()
    assert sktransfer.finetune.load(saved / "clf").predict(X).shape == (4,)


@pytest.mark.parametrize("n_classes", [5, 1])
def test_config_classes_disagreeing_with_the_head(copy_of, n_classes):
    folder = copy_of("clf")

    def edit(config):
        config["fitted"]["classes_"]["values"] = list(range(n_classes))

    _edit_config(folder, edit)
    match = (
        r"config.json', fitted.classes_: .* is not at least 2 class labels"
        if n_classes == 1
        else r"weights.safetensors', tensor head.weight: shape \(2, 32\) but config.json's "
        r"fitted.classes_ needs 5 output rows"
    )
    with pytest.raises(SavedModelError, match=match):
        sktransfer.finetune.load(folder)


def test_head_wider_than_the_classes(copy_of):
    folder = copy_of("clf")

    def edit(state):
        state["head.weight"] = torch.zeros(5, 32)
        state["head.bias"] = torch.zeros(5)

    _edit_weights(folder, edit)
    with pytest.raises(SavedModelError, match=r"tensor head.weight: shape \(5, 32\) but .* 2"):
        sktransfer.finetune.load(folder)


def test_head_bias_of_another_width(copy_of):
    folder = copy_of("reg")
    _edit_weights(folder, lambda state: state.update({"head.bias": torch.zeros(3)}))
    with pytest.raises(SavedModelError, match=r"tensor head.bias: shape \(3,\) but .*\(1,\)"):
        TextRegressor.load(folder)


def test_head_input_width_disagreeing_with_the_body(copy_of):
    folder = copy_of("clf")
    _edit_weights(folder, lambda state: state.update({"head.weight": torch.zeros(2, 7)}))
    with pytest.raises(SavedModelError, match=r"tensor head.weight: shape \(2, 7\) .* \(2, 32\)"):
        sktransfer.finetune.load(folder)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("batch_size", 0, r"params.batch_size: The 'batch_size' parameter .* must be"),
        ("epochs", "3", r"params.epochs: .* must be"),
        ("learning_rate", -1.0, r"params.learning_rate"),
        ("precision", "float8", r"params.precision"),
    ],
)
def test_parameters_outside_their_constraints(copy_of, field, value, match):
    folder = copy_of("clf")
    _edit_config(folder, lambda config: config["params"].update({field: value}))
    with pytest.raises(SavedModelError, match=match):
        sktransfer.finetune.load(folder)


def test_unknown_and_missing_keys(copy_of):
    folder = copy_of("clf")
    _edit_config(folder, lambda config: config["params"].update({"colour": "red"}))
    with pytest.raises(SavedModelError, match=r"params.colour: unknown key"):
        sktransfer.finetune.load(folder)

    folder = copy_of("reg")
    _edit_config(folder, lambda config: config["params"].pop("epochs"))
    with pytest.raises(SavedModelError, match=r"params.epochs: missing"):
        sktransfer.finetune.load(folder)

    folder = copy_of("img")
    _edit_config(folder, lambda config: config["fitted"].pop("history_"))
    with pytest.raises(SavedModelError, match=r"fitted.history_: missing"):
        sktransfer.finetune.load(folder)

    folder = copy_of("img")
    _edit_config(folder, lambda config: config.update({"extra": 1}))
    with pytest.raises(SavedModelError, match=r"config.json', extra: unknown key"):
        sktransfer.finetune.load(folder)


@pytest.mark.parametrize(
    ("name", "field", "value", "match"),
    [
        ("clf", "n_epochs_", "one", r"fitted.n_epochs_: 'one' is not an integer >= 1"),
        ("clf", "n_epochs_", 7, r"fitted.n_epochs_: 7 is not the length of fitted.history_"),
        ("clf", "classes_", [0, 1], r"fitted.classes_: .* keys \"values\" and \"dtype\""),
        ("reg", "y_scale_", [0.0], r"fitted.y_scale_: .* finite positive numbers"),
        ("reg", "y_mean_", [0.0, 1.0], r"fitted.y_mean_: .* a list of 1 finite numbers"),
        ("reg", "n_outputs_", 3, r"fitted.y_mean_: .* a list of 3 finite numbers"),
    ],
)
def test_fitted_attributes_of_the_wrong_type_or_length(copy_of, name, field, value, match):
    folder = copy_of(name)
    _edit_config(folder, lambda config: config["fitted"].update({field: value}))
    with pytest.raises(SavedModelError, match=match):
        sktransfer.finetune.load(folder)


def test_classifier_config_relabelled_as_a_regressor(copy_of):
    folder = copy_of("clf")
    _edit_config(folder, lambda config: config.update({"class": "TextRegressor"}))
    with pytest.raises(SavedModelError, match=r"params.class_weight: unknown key"):
        TextRegressor.load(folder)


def test_classifier_folder_given_to_the_regressor_class(saved):
    with pytest.raises(SavedModelError, match="holds a TextClassifier, not TextRegressor"):
        TextRegressor.load(saved / "clf")
    # Still an InvalidInputError (and a ValueError) for existing except clauses.
    assert issubclass(SavedModelError, InvalidInputError)
    assert issubclass(SavedModelError, ValueError)


def test_invalid_json(copy_of):
    folder = copy_of("clf")
    (folder / "config.json").write_text('{"format": ')
    with pytest.raises(SavedModelError, match=r"config.json', whole file: not valid JSON"):
        sktransfer.finetune.load(folder)


@pytest.mark.parametrize("file", ["weights.safetensors", "body/model.safetensors"])
def test_truncated_safetensors(copy_of, file):
    folder = copy_of("clf")
    path = folder / file
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SavedModelError, match=rf"{file}'.*(truncated|cannot be rebuilt)"):
        sktransfer.finetune.load(folder)


def test_image_body_tensor_of_another_shape(copy_of):
    folder = copy_of("img")
    state = load_file(str(folder / "weights.safetensors"))
    name = next(k for k, v in state.items() if k.startswith("body.") and v.ndim == 4)
    shape = tuple(state[name].shape)

    def edit(state):
        state[name] = torch.zeros(shape[0] + 1, *shape[1:])

    _edit_weights(folder, edit)
    with pytest.raises(SavedModelError, match=rf"tensor {name}: shape .* but the network rebuilt"):
        sktransfer.finetune.load(folder)


def test_image_body_tensor_missing_or_unknown(copy_of):
    folder = copy_of("img")
    _edit_weights(folder, lambda state: state.pop("body.conv_stem.weight"))
    with pytest.raises(SavedModelError, match=r"tensor body.conv_stem.weight: missing"):
        sktransfer.finetune.load(folder)

    folder = copy_of("img")
    _edit_weights(folder, lambda state: state.update({"body.extra": torch.zeros(2)}))
    with pytest.raises(SavedModelError, match=r"tensor body.extra: not a tensor of the rebuilt"):
        sktransfer.finetune.load(folder)


def test_text_body_tensor_missing(copy_of):
    folder = copy_of("clf")
    path = folder / "body" / "model.safetensors"
    state = load_file(str(path))
    key = next(k for k in state if "word_embeddings" in k)
    del state[key]
    save_file(state, str(path))
    with pytest.raises(SavedModelError, match=rf"model.safetensors', tensor {key}: missing"):
        sktransfer.finetune.load(folder)


def test_loaded_estimator_predicts_like_the_saved_one(saved, tiny_text_model):
    # The checks do not change what a valid folder gives.
    X, y = toy_texts(8)
    est = text_estimator(TextClassifier, tiny_text_model, epochs=1).fit(X, y)
    loaded = sktransfer.finetune.load(saved / "clf")
    np.testing.assert_allclose(loaded.predict_proba(X), est.predict_proba(X), atol=1e-6)
