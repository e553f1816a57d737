"""Image models load in every form timm accepts, with the right feature width.

``hf-hub:org/name`` (from the Hugging Face cache, offline), ``local-dir:<folder>``
and a downloaded timm folder passed as a path all load the same weights as
``weights=<file>``, give the same features and share one cache fingerprint.
MobileNetV3/V4 return ``head_hidden_size`` features, not ``num_features``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from sktransfer import ImageClassifier, ImageEncoder
from sktransfer.exceptions import ModelNotFoundError
from tests.conftest import image_samples

COMMIT = "c" * 40
REPO = "someone/tiny-effnet"


@pytest.fixture
def timm_folder(tiny_image_weights, tmp_path):
    """A timm model folder as the Hub holds it: config.json + model.safetensors.

    The weights file is a byte copy of ``tiny_image_weights``, so the folder
    holds the very weights ``weights=tiny_image_weights`` loads.
    """
    import timm
    from timm.models._hub import save_config_for_hf

    folder = tmp_path / "tiny-effnet"
    folder.mkdir()
    model = timm.create_model("test_efficientnet", pretrained=False)
    save_config_for_hf(model, str(folder / "config.json"))
    shutil.copy(tiny_image_weights, folder / "model.safetensors")
    return folder


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants

    hub = tmp_path / "hf-hub"
    hub.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub))
    return hub


def _cache_repo(hub: Path, folder: Path) -> None:
    repo = hub / f"models--{REPO.replace('/', '--')}"
    shutil.copytree(folder, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)


def _encoder(model, **kwargs):
    return ImageEncoder(model, progress=False, cache=None, **kwargs)


def test_local_dir_hf_hub_and_folder_load_the_same_weights(
    timm_folder, tiny_image_weights, hf_cache
):
    _cache_repo(hf_cache, timm_folder)
    X, _ = image_samples(4)
    reference = _encoder("test_efficientnet", weights=tiny_image_weights).fit()
    expected = reference.transform(X)
    forms = {
        "local-dir": f"local-dir:{timm_folder}",
        "folder": str(timm_folder),
        "hf-hub": f"hf-hub:{REPO}",
    }
    for form, model in forms.items():
        encoder = _encoder(model).fit()
        np.testing.assert_allclose(encoder.transform(X), expected, rtol=1e-5, atol=1e-6)
        assert encoder.model_source_ == ("hf-cache" if form == "hf-hub" else "local"), form
        # Same weights, same architecture, same preprocessing: one fingerprint.
        assert encoder.model_fingerprint_ == reference.model_fingerprint_, form


def test_preprocessing_stays_in_the_fingerprint(tiny_image_weights):
    a = _encoder("test_efficientnet", weights=tiny_image_weights).fit()
    b = _encoder("test_efficientnet", weights=tiny_image_weights, image_size=64).fit()
    assert a.model_fingerprint_ != b.model_fingerprint_


def test_folder_without_config_names_what_is_missing(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelNotFoundError, match=r"holds no config\.json.*docs/models\.md"):
        _encoder(f"local-dir:{tmp_path}").fit()


def test_hf_hub_not_cached_offline_says_what_was_tried(hf_cache):
    with pytest.raises(ModelNotFoundError, match=r"(?s)not there.*HF_HUB_OFFLINE.*local-dir:"):
        _encoder("hf-hub:someone/absent").fit()


def test_weights_with_a_model_that_names_its_weights_is_refused(timm_folder, tiny_image_weights):
    with pytest.raises(ModelNotFoundError, match=r"pass one or the other"):
        _encoder(f"local-dir:{timm_folder}", weights=tiny_image_weights).fit()


@pytest.mark.parametrize("architecture", ["mobilenetv3_small_050", "mobilenetv4_conv_small_035"])
def test_encoder_width_is_the_pooled_output_of_mobilenets(architecture):
    import timm
    import torch

    X, _ = image_samples(2, size=32)
    encoder = _encoder(architecture, pretrained=False, image_size=32).fit()
    out = encoder.transform(X)
    model = timm.create_model(architecture, num_classes=0).eval()
    with torch.inference_mode():
        width = model(torch.zeros(1, 3, 32, 32)).shape[1]
    assert encoder.n_features_out_ == out.shape[1] == width
    assert width != model.num_features  # the width the encoder used to announce


def test_image_classifier_fits_a_mobilenetv3():
    import warnings

    from sktransfer.exceptions import UnderfitWarning

    X, y = image_samples(8, size=32)
    clf = ImageClassifier(
        "mobilenetv3_small_050",
        pretrained=False,
        image_size=32,
        trainable_blocks=0,
        epochs=1,
        random_state=0,
        verbose=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnderfitWarning)  # random weights, one epoch
        clf.fit(X, y)
    assert clf._net.head.in_features == 1024
    assert clf.predict_proba(X).shape == (8, 2)
