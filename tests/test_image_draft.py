"""Large JPEG files are decoded at a reduced scale (PIL's draft mode) when the model is small."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from sktransfer import ImageEncoder
from sktransfer._image_io import apply_draft, to_rgb


def _photo(width=640, height=480, fmt="JPEG", exif=None) -> bytes:
    """A smooth synthetic photo (gradients and a few shapes), encoded as ``fmt``."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    pixels = np.stack(
        [
            255 * x / width,
            255 * y / height,
            127 + 120 * np.sin(x / 37.0) * np.cos(y / 23.0),
        ],
        axis=-1,
    ).astype(np.uint8)
    pixels[height // 4 : height // 2, width // 3 : width // 2] = (250, 20, 20)
    buffer = io.BytesIO()
    kwargs = {"quality": 92} if fmt == "JPEG" else {}
    if exif is not None:
        kwargs["exif"] = exif
    Image.fromarray(pixels).save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def test_apply_draft_shrinks_large_jpegs_only():
    image = Image.open(io.BytesIO(_photo()))
    assert apply_draft(image, 100)
    image.load()
    assert image.size == (160, 120)  # 1/4: the smallest scale keeping both sides >= 100
    small = Image.open(io.BytesIO(_photo()))
    assert not apply_draft(small, 300)  # shorter side 480 < 2 * 300: left alone
    png = Image.open(io.BytesIO(_photo(fmt="PNG")))
    assert not apply_draft(png, 100)


def test_draft_keeps_the_exif_orientation():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    data = _photo(exif=exif)
    assert to_rgb(data, 0).size == (480, 640)
    assert to_rgb(data, 0, draft_min_side=100).size == (120, 160)


@pytest.fixture
def photo_files(tmp_path):
    paths = []
    for i, (w, h) in enumerate([(640, 480), (480, 640), (800, 600)]):
        path = tmp_path / f"photo{i}.jpg"
        path.write_bytes(_photo(w, h))
        paths.append(str(path))
    return paths


def test_encoder_decodes_large_jpegs_at_reduced_size(tiny_image_weights, photo_files):
    params = dict(weights=tiny_image_weights, image_size=32, progress=False, cache=None)
    fast = ImageEncoder("test_efficientnet", **params).fit()
    exact = ImageEncoder("test_efficientnet", jpeg_draft=False, **params).fit()
    assert fast._draft_min_side() == 2 * int(np.ceil(32 / fast.data_config_["crop_pct"]))
    a, b = fast.transform(photo_files), exact.transform(photo_files)
    assert not np.array_equal(a, b)  # the draft decode ran
    cos = np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.99
    # Decoded arrays are never affected, and the setting is part of the cache key.
    arrays = [np.asarray(Image.open(p)) for p in photo_files]
    np.testing.assert_array_equal(fast.transform(arrays), exact.transform(arrays))
    assert fast.model_fingerprint_ != exact.model_fingerprint_
