"""The evaluation transform split before ``ToTensor``: per-image pixels, one float batch."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sktransfer import ImageEncoder  # noqa: E402
from sktransfer._adapters.image import ImageAdapter  # noqa: E402


def _photos():
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    # Sizes on both sides of the resize, portrait and landscape, odd and even.
    return [
        photos[0][:230, :301],
        photos[1][:427, :250],
        photos[0][100:199, 50:401],
        photos[1][7:420, 3:420],
    ]


def _pil(array):
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(array))


@pytest.fixture(scope="module")
def encoder():
    return ImageEncoder(cache=None, precision="float32").fit()


def test_the_split_gives_the_transforms_numbers_bit_for_bit(encoder):
    adapter = encoder._adapter
    per_image, to_batch = adapter.pixel_batches()
    images = [_pil(p) for p in _photos()]
    expected = torch.stack([adapter.eval_transform(image) for image in images])
    got = to_batch([per_image(image) for image in images])
    assert torch.equal(got, expected)
    assert got.is_contiguous(memory_format=torch.channels_last)


def test_the_encoder_gives_the_same_features_with_and_without_the_split(encoder, monkeypatch):
    photos = _photos()
    with_split = encoder.transform(photos)
    monkeypatch.setattr(ImageAdapter, "pixel_batches", lambda self: None)
    np.testing.assert_array_equal(with_split, encoder.transform(photos))


def test_a_transform_without_tensor_and_normalize_at_the_end_is_not_split(encoder):
    import torchvision.transforms as T

    adapter = ImageEncoder(cache=None, precision="float32").fit()._adapter
    steps = adapter.eval_transform.transforms
    adapter.eval_transform = T.Compose([*steps[:-2], steps[-2]])  # no Normalize
    adapter.__dict__.pop("_pixel_batches", None)
    assert adapter.pixel_batches() is None


def test_a_split_that_changes_the_numbers_is_not_used():
    import torchvision.transforms as T
    import torchvision.transforms.functional as F

    class ToTensor:  # same name, other numbers: the check on the probe photos refuses it
        def __call__(self, image):
            return F.pil_to_tensor(image).float() / 128

    adapter = ImageEncoder(cache=None, precision="float32").fit()._adapter
    steps = adapter.eval_transform.transforms
    adapter.eval_transform = T.Compose([*steps[:-2], ToTensor(), steps[-1]])
    adapter.__dict__.pop("_pixel_batches", None)
    assert adapter.pixel_batches() is None


def test_the_adapter_still_pickles_after_the_split_was_made(encoder):
    adapter = encoder._adapter
    assert adapter.pixel_batches() is not None
    copy = pickle.loads(pickle.dumps(adapter))
    assert "_pixel_batches" not in copy.__dict__


def test_inference_batches_are_the_transforms_numbers_channels_last(encoder, monkeypatch):
    adapter = encoder._adapter
    photos = _photos()
    items = adapter.check_X(photos)
    expected = torch.stack([adapter.eval_transform(_pil(p)) for p in photos])
    batches = list(adapter.inference_batches(items, 3))
    assert [rows.tolist() for rows, _ in batches] == [[0, 1, 2], [3]]
    got = torch.cat([batch for _, batch in batches])
    assert torch.equal(got, expected)
    assert all(b.is_contiguous(memory_format=torch.channels_last) for _, b in batches)
    # Without the split (a transform that does not split), the whole transform runs.
    monkeypatch.setattr(adapter, "_pixel_batches", None)
    batches = list(adapter.inference_batches(items, 3))
    assert torch.equal(torch.cat([batch for _, batch in batches]), expected)
    assert batches[0][1].is_contiguous()
