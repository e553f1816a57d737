"""Small things users hit: URLs as images, an encoder's own cache counts."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from sktransfer import ImageEncoder, TextEncoder
from sktransfer._image_io import content_key, to_rgb
from sktransfer.exceptions import ImageDecodeError
from tests.conftest import text_samples


@pytest.mark.parametrize("url", ["http://example.com/cat.jpg", "HTTPS://example.com/a.png"])
def test_a_url_is_refused_with_what_to_do(url):
    with pytest.raises(ImageDecodeError, match=r"^image 3: .*is a URL; sktransfer does not fetch"):
        to_rgb(url, 3)
    with pytest.raises(ImageDecodeError, match=r"is a URL.*urlopen\(url, timeout=10\)"):
        content_key(url)


@pytest.mark.parametrize("cache", ["memory", None])
def test_image_encoder_names_the_url_position(tiny_image_weights, cache):
    encoder = ImageEncoder("test_efficientnet", weights=tiny_image_weights, progress=False)
    encoder.set_params(cache=cache).fit()
    good = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ImageDecodeError, match=r"^image 1: 'https://x\.org/a\.jpg' is a URL"):
        encoder.transform([good, "https://x.org/a.jpg"])


def test_a_file_named_like_a_scheme_is_still_a_path(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (4, 4), "red").save(tmp_path / "http-cat.png")
    assert to_rgb("http-cat.png", 0).size == (4, 4)


def test_cache_info_counts_this_encoders_lookups(tiny_text_model):
    X, _ = text_samples(6)
    first = TextEncoder(tiny_text_model, progress=False).fit()
    first.transform(X)
    other = clone(first).fit()
    other.transform(X)  # all hits, served from what `first` stored
    other.transform(X[:2])
    a, b = first.cache_info(), other.cache_info()
    assert (a.hits, a.misses) == (0, 6)
    assert (b.hits, b.misses) == (8, 0)
    # The store's own counts (every encoder together) are still there.
    assert (b.extra["store_hits"], b.extra["store_misses"]) == (8, 6)
    assert a.entries == b.entries == 6
    first.fit()
    assert (first.cache_info().hits, first.cache_info().misses) == (0, 0)
