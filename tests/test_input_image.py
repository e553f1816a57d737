"""Image inputs that used to hang or fail unclearly are refused with the position and remedy."""

from __future__ import annotations

import os
import sys
import threading

import numpy as np
import pytest

from sktransfer import ImageEncoder
from sktransfer._image_io import content_key, to_rgb
from sktransfer.exceptions import ImageDecodeError, InvalidInputError
from tests.input_helpers import time_limit

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and /dev/zero are POSIX")


@pytest.fixture
def fifo(tmp_path):
    """A named pipe with no writer: opening it for reading blocks.

    A watchdog opens the writing end after 15 s, so that a regression that
    blocks in a decoding thread (where ``time_limit`` cannot reach) ends with
    a failing test instead of a hung run.
    """
    path = tmp_path / "pipe.png"
    os.mkfifo(path)
    done = threading.Event()

    def release_readers():
        if done.wait(15):
            return
        while not done.is_set():
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:  # no reader (yet)
                pass
            done.wait(0.1)

    watchdog = threading.Thread(target=release_readers, daemon=True)
    watchdog.start()
    yield str(path)
    done.set()
    watchdog.join()


@pytest.fixture
def encoder(tiny_image_weights):
    return ImageEncoder("test_efficientnet", weights=tiny_image_weights, progress=False)


def test_content_key_refuses_a_fifo(fifo):
    with time_limit(10), pytest.raises(ImageDecodeError, match=r"FIFO.*not a regular file"):
        content_key(fifo)


def test_content_key_refuses_a_device():
    with time_limit(10), pytest.raises(ImageDecodeError, match=r"character device.*regular file"):
        content_key("/dev/zero")


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
def test_to_rgb_refuses_special_files(kind, fifo, tmp_path):
    path = {"fifo": fifo, "device": "/dev/zero", "directory": str(tmp_path)}[kind]
    with time_limit(10), pytest.raises(ImageDecodeError) as info:
        to_rgb(path, 7)
    message = str(info.value)
    assert message.startswith("image 7: ")
    assert path in message
    assert "not a regular file" in message
    assert "Pass the path of an image file" in message


@pytest.mark.parametrize("cache", ["memory", None])
@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
def test_image_encoder_refuses_special_files_with_position(encoder, fifo, cache, special):
    path = fifo if special == "fifo" else special
    encoder.set_params(cache=cache).fit()
    good = np.zeros((8, 8, 3), np.uint8)
    with time_limit(30), pytest.raises(ImageDecodeError, match=r"^image 1: .*not a regular file"):
        encoder.transform([good, path, good])


def test_image_encoder_fills_special_files_with_on_error(encoder, fifo):
    encoder.set_params(on_error="nan").fit()
    good = np.zeros((8, 8, 3), np.uint8)
    with time_limit(30), pytest.warns(UserWarning, match=r"positions \[1, 2\]"):
        out = encoder.transform([good, fifo, "/dev/zero"])
    assert np.isfinite(out[0]).all() and np.isnan(out[1:]).all()


def test_regular_file_symlink_still_works(tmp_path):
    from PIL import Image

    target = tmp_path / "real.png"
    Image.new("RGB", (4, 4), (10, 20, 30)).save(target)
    link = tmp_path / "link.png"
    link.symlink_to(target)
    assert to_rgb(str(link), 0).getpixel((0, 0)) == (10, 20, 30)
    assert content_key(str(link)) == content_key(target.read_bytes())


def test_invalid_input_error_is_the_base():
    assert issubclass(ImageDecodeError, InvalidInputError)


# ------------------------------------------------------------- fine-tuners
@pytest.mark.parametrize("early_stopping", [False, True])
def test_image_classifier_fit_names_the_position_in_the_users_input(
    tiny_image_weights, early_stopping
):
    """Training batches are shuffled subsets: the error must still name the user's position."""
    from sktransfer.finetune import ImageClassifier
    from tests.finetune_helpers import image_estimator, toy_images

    images, y = toy_images(12)
    for bad_position in (5, 10):
        X = list(images)
        X[bad_position] = np.full((4, 4), 2.0)  # floats outside [0, 1]
        model = image_estimator(
            ImageClassifier,
            tiny_image_weights,
            epochs=1,
            batch_size=4,
            early_stopping=early_stopping,
            validation_fraction=0.5,
        )
        with pytest.raises(InvalidInputError, match=rf"^image {bad_position}: float pixel"):
            model.fit(X, y)


def test_image_classifier_fit_refuses_special_files_with_position(tiny_image_weights, fifo):
    from sktransfer.finetune import ImageClassifier
    from tests.finetune_helpers import image_estimator, toy_images

    images, y = toy_images(6)
    X = images[:3] + [fifo] + images[4:]
    model = image_estimator(ImageClassifier, tiny_image_weights, epochs=1, batch_size=4)
    with time_limit(60), pytest.raises(ImageDecodeError, match=r"^image 3: .*FIFO"):
        model.fit(X, y)
