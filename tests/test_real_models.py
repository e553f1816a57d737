"""The real pretrained models installed by ``sktransfer[offline]`` (marked: real_model)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.real_model

SENTENCES = [
    "A man is playing a guitar.",
    "Someone is playing an instrument.",
    "The stock market fell sharply today.",
    "Shares dropped steeply on Wall Street.",
    "A cat sleeps on the sofa.",
    "I loved this film, the acting was wonderful!",
    "Worst purchase ever; it broke after a day.",
    "",
]


@pytest.fixture(scope="module")
def text_encoder():
    from sktransfer import TextEncoder

    return TextEncoder(progress=False, cache=None).fit()


@pytest.fixture(scope="module")
def image_encoder():
    from sktransfer import ImageEncoder

    return ImageEncoder(progress=False, cache=None).fit()


def test_default_text_model_resolves_to_the_packaged_copy(text_encoder):
    assert text_encoder.model_source_ == "package"
    assert text_encoder.n_features_out_ == 384


def test_text_features_match_sentence_transformers(text_encoder):
    from sentence_transformers import SentenceTransformer

    from sktransfer._hub import packaged_text_model_dir

    reference = SentenceTransformer(
        str(packaged_text_model_dir("all-MiniLM-L6-v2")), device="cpu"
    ).encode(SENTENCES, convert_to_numpy=True)
    ours = text_encoder.transform(SENTENCES)
    np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_text_features_capture_meaning(text_encoder):
    X = text_encoder.transform(SENTENCES)
    cos = X @ X.T  # the model ends with a Normalize layer
    assert cos[0, 1] > 0.5 > cos[0, 2]
    assert cos[2, 3] > 0.5 > cos[2, 4]
    assert cos[0, 1] > cos[0, 4] and cos[2, 3] > cos[2, 0]


def test_default_image_model_resolves_to_the_packaged_copy(image_encoder):
    assert image_encoder.model_source_ == "package"
    assert image_encoder.n_features_out_ == 1280
    config = image_encoder.data_config_
    assert config["input_size"] == (3, 224, 224)
    assert config["mean"] == (0.5, 0.5, 0.5) and config["std"] == (0.5, 0.5, 0.5)
    assert config["interpolation"] == "bicubic"


def test_flower_photo_is_a_daisy_through_the_packaged_classifier(image_encoder):
    """Features go through the checkpoint's own ImageNet head: class 985 is 'daisy'."""
    import torch
    from sklearn.datasets import load_sample_image

    from sktransfer._hub import packaged_image_checkpoint

    checkpoint = torch.load(
        packaged_image_checkpoint("tf_efficientnet_lite0"), map_location="cpu", weights_only=True
    )
    weight = checkpoint["_fc.weight"].numpy()
    bias = checkpoint["_fc.bias"].numpy()
    features = image_encoder.transform([load_sample_image("flower.jpg")])
    logits = features @ weight.T + bias
    assert int(np.argmax(logits[0])) == 985


def test_image_features_match_timm_forward(image_encoder):
    """Same preprocessed tensors through timm's forward_features + pooling."""
    import timm.data
    import torch
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    ours = image_encoder.transform(photos)
    transform = timm.data.create_transform(**image_encoder.data_config_, is_training=False)
    batch = torch.stack([transform(Image.fromarray(p)) for p in photos])
    model = image_encoder.model_
    with torch.inference_mode():
        expected = model.forward_head(model.forward_features(batch), pre_logits=True).numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5)


def test_text_rows_do_not_depend_on_the_rest_of_the_batch(text_encoder):
    """Padding to the longest sentence of a batch must not change a sentence's row."""
    together = text_encoder.transform(SENTENCES)
    alone = np.vstack([text_encoder.transform([s]) for s in SENTENCES])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(text_encoder.transform(SENTENCES[::-1])[::-1], together, atol=1e-5)
