"""Tests of sktransfer._image_io: containers, decoding rules, batching, content keys."""

from __future__ import annotations

import io
import re
import threading
import time
from importlib import resources

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.datasets import load_sample_image

from sktransfer._image_io import (
    THREAD_PREFIX,
    as_image_list,
    content_key,
    iter_decoded_batches,
    to_rgb,
)
from sktransfer.exceptions import ImageDecodeError, InvalidInputError


def pixels(image: Image.Image) -> np.ndarray:
    assert image.mode == "RGB"
    return np.asarray(image)


def random_rgb(h: int = 12, w: int = 9, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def decode_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)}


# ----------------------------------------------------------------- containers
def test_list_and_tuple_are_kept_as_items():
    a, b = random_rgb(), random_rgb(seed=1)
    assert as_image_list([a, b])[1] is b
    assert as_image_list(("x.png", "y.png")) == ["x.png", "y.png"]
    assert as_image_list([]) == []


def test_pandas_series_and_one_column_dataframe():
    paths = ["a.png", "b.png", "c.png"]
    series = pd.Series(paths, index=[10, 11, 12])
    assert as_image_list(series) == paths
    assert as_image_list(pd.DataFrame({"image": paths})) == paths
    with pytest.raises(InvalidInputError, match="one column of images.*2 columns"):
        as_image_list(pd.DataFrame({"image": paths, "other": [1, 2, 3]}))


def test_object_arrays_one_dimension_or_one_column():
    arrays = np.empty(2, dtype=object)
    arrays[0], arrays[1] = random_rgb(), random_rgb(seed=1)
    assert [a is b for a, b in zip(as_image_list(arrays), arrays, strict=True)] == [True, True]
    column = np.array([["a.png"], ["b.png"]], dtype=object)
    assert as_image_list(column) == ["a.png", "b.png"]
    assert as_image_list(np.array(["a.png", "b.png"])) == ["a.png", "b.png"]


def test_3d_array_is_a_batch_of_grayscale_images():
    batch = np.arange(2 * 5 * 6, dtype=np.uint8).reshape(2, 5, 6)
    items = as_image_list(batch)
    assert len(items) == 2
    np.testing.assert_array_equal(items[1], batch[1])
    np.testing.assert_array_equal(pixels(to_rgb(items[1], 1))[..., 0], batch[1])


def test_3d_array_ending_in_channels_is_taken_as_one_unwrapped_image():
    with pytest.raises(InvalidInputError, match=r"single \(H, W, 3\) image; wrap it in a list"):
        as_image_list(random_rgb())


def test_4d_channels_last_and_channels_first_batches():
    batch = np.stack([random_rgb(seed=s) for s in range(3)])  # (3, 12, 9, 3)
    last = as_image_list(batch)
    first = as_image_list(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)))  # (3, 3, 12, 9)
    assert [a.shape for a in last] == [(12, 9, 3)] * 3
    assert [a.shape for a in first] == [(12, 9, 3)] * 3
    for i in range(3):
        np.testing.assert_array_equal(last[i], batch[i])
        np.testing.assert_array_equal(first[i], batch[i])
        np.testing.assert_array_equal(pixels(to_rgb(first[i], i)), batch[i])


def test_4d_ambiguous_layout_prefers_channels_last():
    batch = np.zeros((2, 3, 8, 4), np.uint8)  # channels-first 8x4 or channels-last 3x8 RGBA
    assert [a.shape for a in as_image_list(batch)] == [(3, 8, 4)] * 2


def test_4d_without_a_channel_axis_is_rejected():
    with pytest.raises(InvalidInputError, match=r"4-D array of shape \(2, 5, 6, 7\)"):
        as_image_list(np.zeros((2, 5, 6, 7), np.uint8))


def test_2d_numeric_array_is_called_tabular():
    with pytest.raises(InvalidInputError, match=r"tabular features.*\(n, H, W\)"):
        as_image_list(np.zeros((5, 10)))


@pytest.mark.parametrize(
    "single",
    ["photo.jpg", b"\x89PNG...", Image.new("RGB", (4, 4))],
    ids=["path", "bytes", "PIL"],
)
def test_single_item_must_be_wrapped_in_a_list(single):
    with pytest.raises(InvalidInputError, match=r"wrap it in a list"):
        as_image_list(single)


def test_single_path_object_must_be_wrapped(tmp_path):
    with pytest.raises(InvalidInputError, match=r"single file path.*wrap it in a list"):
        as_image_list(tmp_path / "photo.jpg")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (None, "expected a list of images, got None"),
        (3, "expected a list, tuple, .* got int"),
        ({"a": 1}, "expected a list, tuple, .* got dict"),
        (np.zeros(5), r"1-D numeric array of shape \(5,\)"),
        (np.zeros((2, 2, 2, 2, 2)), r"5-D numeric array of shape \(2, 2, 2, 2, 2\)"),
    ],
)
def test_other_containers_are_rejected(bad, message):
    with pytest.raises(InvalidInputError, match=message):
        as_image_list(bad)


def test_item_types_are_not_checked_by_the_container():
    assert as_image_list([None, 3]) == [None, 3]


# -------------------------------------------------------------- numpy arrays
def test_grayscale_uint8_becomes_equal_rgb_channels():
    for gray in (np.full((5, 7), 77, np.uint8), np.full((5, 7, 1), 77, np.uint8)):
        out = pixels(to_rgb(gray, 0))
        assert out.shape == (5, 7, 3)
        assert (out == 77).all()


def test_rgb_uint8_is_unchanged():
    image = random_rgb()
    np.testing.assert_array_equal(pixels(to_rgb(image, 0)), image)


def test_non_contiguous_view_is_decoded():
    image = random_rgb(12, 18)
    view = image[:, ::2]
    np.testing.assert_array_equal(pixels(to_rgb(view, 0)), view)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.0, 0), (1.0, 255), (0.5, 128), (0.25, 64), (77 / 255, 77), (1 + 1e-7, 255), (-1e-7, 0)],
)
def test_float_in_unit_range_is_scaled_and_rounded_half_up(value, expected):
    for dtype in (np.float64, np.float32):
        out = pixels(to_rgb(np.full((3, 3), value, dtype), 0))
        assert (out == expected).all(), (value, dtype, out[0, 0])


def test_float_image_round_trips_uint8():
    image = random_rgb()
    np.testing.assert_array_equal(pixels(to_rgb(image / 255.0, 0)), image)
    np.testing.assert_array_equal(pixels(to_rgb((image / 255.0).astype(np.float32), 0)), image)


@pytest.mark.parametrize("value", [1.01, -0.01, 255.0])
def test_float_out_of_range_is_rejected(value):
    with pytest.raises(InvalidInputError, match=r"image 4: float pixel values must be in \[0, 1\]"):
        to_rgb(np.full((3, 3), value), 4)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nan_and_inf_are_rejected(value):
    image = np.zeros((3, 3))
    image[1, 1] = value
    with pytest.raises(InvalidInputError, match="image 2: .*NaN or infinite"):
        to_rgb(image, 2)


def test_bool_maps_to_black_and_white():
    mask = np.array([[True, False]])
    np.testing.assert_array_equal(pixels(to_rgb(mask, 0))[..., 0], [[255, 0]])


def test_uint16_is_scaled_by_257():
    values = np.array([[65535, 257 * 10, 0, 128, 129]], np.uint16)
    np.testing.assert_array_equal(pixels(to_rgb(values, 0))[..., 1], [[255, 10, 0, 0, 1]])


def test_other_integers_in_byte_range_are_accepted():
    out = pixels(to_rgb(np.full((2, 2, 3), 200, np.int64), 0))
    assert (out == 200).all()
    with pytest.raises(InvalidInputError, match=r"image 1: int32 .*\[0, 255\], found \[-1, 300\]"):
        to_rgb(np.array([[-1, 300]], np.int32), 1)


def test_rgba_array_is_composited_onto_white():
    image = np.zeros((1, 3, 4), np.uint8)
    image[..., :3] = (10, 20, 30)
    image[..., 3] = (0, 255, 128)
    out = pixels(to_rgb(image, 0))
    np.testing.assert_array_equal(out[0, 0], (255, 255, 255))  # fully transparent -> white
    np.testing.assert_array_equal(out[0, 1], (10, 20, 30))  # opaque -> unchanged
    expected = np.round(np.array([10, 20, 30]) * 128 / 255 + 255 * 127 / 255)
    np.testing.assert_allclose(out[0, 2], expected, atol=1)


@pytest.mark.parametrize("shape", [(4, 4, 2), (5,), (0, 4), (4, 0, 3), (3, 8, 8), (2, 2, 2, 2)])
def test_unsupported_array_shapes_name_index_and_shape(shape):
    with pytest.raises(
        InvalidInputError, match=rf"image 6: unsupported array shape {re.escape(str(shape))}"
    ):
        to_rgb(np.zeros(shape, np.uint8), 6)


def test_channels_first_item_gets_a_hint():
    with pytest.raises(InvalidInputError, match=r"channels-first: use np\.moveaxis"):
        to_rgb(np.zeros((3, 8, 8), np.uint8), 0)


def test_error_messages_never_print_whole_arrays():
    big = np.full((200, 200), 7.0)
    with pytest.raises(InvalidInputError, match=r"image 0: .*shape \(200, 200\)") as info:
        to_rgb(big, 0)
    assert len(str(info.value)) < 300


# ----------------------------------------------------------------- PIL images
def test_pil_modes_become_rgb():
    assert (pixels(to_rgb(Image.new("L", (3, 2), 77), 0)) == 77).all()
    assert (pixels(to_rgb(Image.new("1", (3, 2), 1), 0)) == 255).all()
    cmyk = pixels(to_rgb(Image.new("CMYK", (3, 2), (0, 0, 0, 0)), 0))
    assert (cmyk == 255).all()
    palette = Image.new("P", (3, 2), 1)
    palette.putpalette([0, 0, 0, 10, 20, 30])
    np.testing.assert_array_equal(pixels(to_rgb(palette, 0))[0, 0], (10, 20, 30))


def test_pil_transparency_is_composited_onto_white():
    rgba = Image.new("RGBA", (2, 2), (10, 20, 30, 0))
    assert (pixels(to_rgb(rgba, 0)) == 255).all()
    la = Image.new("LA", (2, 2), (50, 255))
    assert (pixels(to_rgb(la, 0)) == 50).all()
    palette = Image.new("P", (2, 1), 0)
    palette.putpalette([0, 0, 0, 10, 20, 30])
    palette.putpixel((1, 0), 1)
    palette.info["transparency"] = 0
    out = pixels(to_rgb(palette, 0))
    np.testing.assert_array_equal(out[0], [(255, 255, 255), (10, 20, 30)])


def test_pil_16_bit_is_scaled_not_clipped(tmp_path):
    for value, expected in [(65535, 255), (257 * 10, 10)]:
        image = Image.fromarray(np.full((3, 4), value, np.uint16))
        assert image.mode == "I;16"
        assert (pixels(to_rgb(image, 0)) == expected).all()
        path = tmp_path / f"deep{value}.png"
        image.save(path)
        assert (pixels(to_rgb(path, 0)) == expected).all()
    as_int32 = Image.fromarray(np.array([[65535, 2570, -5, 100000]], np.int32))
    assert as_int32.mode == "I"
    np.testing.assert_array_equal(pixels(to_rgb(as_int32, 0))[..., 0], [[255, 10, 0, 255]])


def test_pil_float_mode_follows_the_float_rule():
    assert (pixels(to_rgb(Image.fromarray(np.full((2, 2), 0.5, np.float32)), 0)) == 128).all()
    with pytest.raises(InvalidInputError, match=r"image 3: float pixel values"):
        to_rgb(Image.fromarray(np.full((2, 2), 7.0, np.float32)), 3)


# ---------------------------------------------------------- files and bytes
def test_png_path_and_bytes_give_identical_pixels(tmp_path):
    image = random_rgb(20, 30)
    path = tmp_path / "image.png"
    Image.fromarray(image).save(path)
    from_path = pixels(to_rgb(path, 0))
    np.testing.assert_array_equal(from_path, image)
    np.testing.assert_array_equal(pixels(to_rgb(str(path), 0)), from_path)
    data = path.read_bytes()
    for blob in (data, bytearray(data), memoryview(data)):
        np.testing.assert_array_equal(pixels(to_rgb(blob, 0)), from_path)


def test_real_jpeg_matches_sklearn_sample_image():
    path = resources.files("sklearn.datasets.images") / "flower.jpg"
    with resources.as_file(path) as file:
        out = pixels(to_rgb(file, 0))
    np.testing.assert_array_equal(out, load_sample_image("flower.jpg"))


def test_exif_orientation_is_applied(tmp_path):
    image = np.zeros((20, 40, 3), np.uint8)  # 40 wide, 20 tall
    image[:, :20] = (255, 0, 0)  # left half red
    image[:, 20:] = (0, 0, 255)  # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "rotated.jpg"
    Image.fromarray(image).save(path, exif=exif, quality=95)
    out = to_rgb(path, 0)
    assert out.size == (20, 40)  # (width, height) swapped
    top, bottom = pixels(out)[5].mean(axis=0), pixels(out)[35].mean(axis=0)
    assert top[0] > 200 and top[2] < 60  # the left half is now on top
    assert bottom[2] > 200 and bottom[0] < 60
    # The same file as bytes is rotated too.
    np.testing.assert_array_equal(pixels(to_rgb(path.read_bytes(), 0)), pixels(out))


def test_rgba_png_file_is_composited_onto_white(tmp_path):
    path = tmp_path / "clear.png"
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(path)
    assert (pixels(to_rgb(path, 0)) == 255).all()


def test_truncated_jpeg_names_index_and_path(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(random_rgb(64, 64)).save(buffer, format="JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageDecodeError, match=r"image 3: cannot decode '.*cut\.jpg' as an image"):
        to_rgb(path, 3)


def test_random_bytes_file_names_index_and_path(tmp_path):
    path = tmp_path / "noise.jpg"
    path.write_bytes(np.random.default_rng(0).bytes(500))
    with pytest.raises(
        ImageDecodeError, match=r"image 7: cannot decode '.*noise\.jpg' as an image \(unknown"
    ):
        to_rgb(str(path), 7)


def test_undecodable_bytes_say_how_many():
    with pytest.raises(ImageDecodeError, match=r"image 3: cannot decode 1234 bytes as an image"):
        to_rgb(b"x" * 1234, 3)
    with pytest.raises(ImageDecodeError, match=r"image 0: cannot decode 0 bytes .*\(empty\)"):
        to_rgb(b"", 0)


def test_missing_file(tmp_path):
    missing = tmp_path / "nope" / "y.jpg"
    with pytest.raises(ImageDecodeError, match=r"image 3: file not found: '.*y\.jpg'"):
        to_rgb(missing, 3)


def test_directory_is_not_an_image(tmp_path):
    with pytest.raises(ImageDecodeError, match=r"image 0: .* is a directory, not a regular file"):
        to_rgb(tmp_path, 0)


@pytest.mark.parametrize(
    ("item", "name"), [(None, "NoneType"), (float("nan"), "float"), (3, "int"), ([1, 2], "list")]
)
def test_unsupported_item_types(item, name):
    with pytest.raises(
        InvalidInputError,
        match=rf"image 5: expected a file path, bytes, a PIL image or a numpy array, got {name}",
    ):
        to_rgb(item, 5)


def test_decode_errors_are_value_errors():
    assert issubclass(ImageDecodeError, InvalidInputError)
    with pytest.raises(ValueError, match="image 0"):
        to_rgb(b"junk", 0)


# ---------------------------------------------------------------- batching
def as_array(image: Image.Image) -> np.ndarray:
    return np.asarray(image)


def test_batch_boundaries_and_values():
    images = [np.full((4, 4), i, np.uint8) for i in range(10)]
    batches = list(iter_decoded_batches(images, 4, as_array))
    assert [start for start, _, _ in batches] == [0, 4, 8]
    assert [len(out) for _, out, _ in batches] == [4, 4, 2]
    values = [int(a[0, 0, 0]) for _, out, _ in batches for a in out]
    assert values == list(range(10))
    assert all(failed == [] for _, _, failed in batches)


def test_empty_input_yields_nothing():
    assert list(iter_decoded_batches([], 4, None, n_workers=4)) == []


def test_threads_preserve_order():
    rng = np.random.default_rng(0)
    images = [random_rgb(8, 8, seed=s) for s in range(23)]
    delays = rng.uniform(0, 0.01, size=len(images))

    def slow(image):
        # Uneven delays make the threads finish out of order.
        time.sleep(delays[int(np.asarray(image)[0, 0, 0]) % len(delays)])
        return np.asarray(image)

    serial = list(iter_decoded_batches(images, 5, slow, n_workers=1))
    threaded = list(iter_decoded_batches(images, 5, slow, n_workers=4))
    assert [(s, f) for s, _, f in serial] == [(s, f) for s, _, f in threaded]
    for (_, a, _), (_, b, _) in zip(serial, threaded, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
    flat = [x for _, out, _ in threaded for x in out]
    for x, image in zip(flat, images, strict=True):
        np.testing.assert_array_equal(x, image)


def test_serial_decoding_is_lazy():
    seen = []
    images = [np.zeros((2, 2), np.uint8)] * 10

    def record(image):
        seen.append(image)
        return image

    batches = iter_decoded_batches(images, 4, record)
    assert seen == []  # nothing happens before the first batch is asked for
    next(batches)
    assert len(seen) == 4
    batches.close()


def test_threads_prefetch_exactly_the_next_batch():
    seen: set[int] = set()
    lock = threading.Lock()
    images = [np.full((2, 2), i, np.uint8) for i in range(12)]

    def record(image):
        with lock:
            seen.add(int(np.asarray(image)[0, 0, 0]))
        return image

    batches = iter_decoded_batches(images, 4, record, n_workers=2)
    start, _, _ = next(batches)
    assert start == 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(seen) < 8:
        time.sleep(0.005)
    with lock:
        assert seen == set(range(8))  # batch 1 decoded while the caller holds batch 0
    batches.close()


def test_without_ahead_a_batch_is_decoded_only_when_asked_for():
    seen: set[int] = set()
    lock = threading.Lock()

    def record(image):
        with lock:
            seen.add(int(np.asarray(image)[0, 0, 0]))
        return np.asarray(image)

    images = [np.full((2, 2), i, np.uint8) for i in range(12)]
    batches = iter_decoded_batches(images, 4, record, n_workers=2, ahead=False)
    time.sleep(0.05)
    assert seen == set()  # nothing before the first batch is asked for
    start, outputs, _ = next(batches)
    assert start == 0 and [int(o[0, 0, 0]) for o in outputs] == [0, 1, 2, 3]
    time.sleep(0.2)  # time enough for a pool that decodes ahead (see test_image_io)
    with lock:
        assert seen == set(range(4))
    start, outputs, _ = next(batches)
    assert start == 4 and [int(o[0, 0, 0]) for o in outputs] == [4, 5, 6, 7]
    with lock:
        assert seen == set(range(8))
    batches.close()


def test_without_ahead_a_batch_uses_every_thread_of_the_pool():
    names: set[str] = set()
    barrier = threading.Barrier(3, timeout=10)

    def meet(image):
        names.add(threading.current_thread().name)
        barrier.wait()  # three items of one batch decode at the same time, or this times out
        return np.asarray(image)

    images = [np.full((2, 2), i, np.uint8) for i in range(6)]
    batches = list(iter_decoded_batches(images, 3, meet, n_workers=3, ahead=False))
    assert [start for start, _, _ in batches] == [0, 3]
    assert len(names) == 3


@pytest.mark.parametrize("ahead", [True, False])
def test_order_errors_and_shutdown_do_not_depend_on_ahead(tmp_path, ahead):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    images = [np.full((3, 3), i, np.uint8) for i in range(10)]
    images[6] = bad
    before = decode_threads()
    batches = list(
        iter_decoded_batches(images, 4, np.asarray, on_error="zero", n_workers=3, ahead=ahead)
    )
    assert [(start, failed) for start, _, failed in batches] == [(0, []), (4, [6]), (8, [])]
    values = [None if o is None else int(o[0, 0, 0]) for _, out, _ in batches for o in out]
    assert values == [0, 1, 2, 3, 4, 5, None, 7, 8, 9]
    assert decode_threads() - before == set()


@pytest.mark.parametrize("n_workers", [1, 4])
@pytest.mark.parametrize("on_error", ["zero", "nan"])
def test_failed_items_report_absolute_positions(tmp_path, n_workers, on_error):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG truncated")
    images = [np.zeros((3, 3), np.uint8)] * 10
    images[1], images[6], images[9] = bad, None, b"junk"
    batches = list(
        iter_decoded_batches(images, 4, as_array, on_error=on_error, n_workers=n_workers)
    )
    assert [failed for _, _, failed in batches] == [[1], [6], [9]]
    outputs = [x for _, out, _ in batches for x in out]
    assert [i for i, x in enumerate(outputs) if x is None] == [1, 6, 9]


@pytest.mark.parametrize("n_workers", [1, 4])
def test_error_in_a_later_batch_surfaces(tmp_path, n_workers):
    before = decode_threads()
    bad = tmp_path / "late.jpg"
    bad.write_bytes(b"not a jpeg")
    images = [np.zeros((3, 3), np.uint8)] * 9 + [bad]
    batches = iter_decoded_batches(images, 4, as_array, n_workers=n_workers)
    assert next(batches)[0] == 0
    assert next(batches)[0] == 4
    with pytest.raises(ImageDecodeError, match=r"image 9: cannot decode '.*late\.jpg'"):
        next(batches)
    assert decode_threads() - before == set()


def test_only_the_first_error_of_a_batch_is_raised():
    images = [np.zeros((3, 3), np.uint8), None, np.zeros((3, 2, 2), np.uint8)]
    with pytest.raises(InvalidInputError, match="image 1: "):
        list(iter_decoded_batches(images, 3, None, n_workers=3))


def test_transform_errors_are_not_swallowed():
    def broken(image):
        raise RuntimeError("transform bug")

    with pytest.raises(RuntimeError, match="transform bug"):
        list(iter_decoded_batches([np.zeros((2, 2), np.uint8)] * 3, 2, broken, on_error="zero"))


def test_executor_is_shut_down_when_the_consumer_stops_early():
    before = decode_threads()
    images = [np.zeros((8, 8), np.uint8)] * 40
    batches = iter_decoded_batches(images, 4, as_array, n_workers=4)
    next(batches)
    assert decode_threads() - before  # the pool is running
    batches.close()
    assert decode_threads() - before == set()
    for thread in decode_threads() - before:  # pragma: no cover - names the culprit
        assert not thread.is_alive(), thread.name


def test_executor_is_shut_down_when_the_loop_breaks():
    before = decode_threads()
    images = [np.zeros((8, 8), np.uint8)] * 40
    for start, _, _ in iter_decoded_batches(images, 4, as_array, n_workers=4):
        if start == 8:
            break
    assert decode_threads() - before == set()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"on_error": "skip"}, "on_error"), ({"n_workers": 0}, "n_workers")],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        list(iter_decoded_batches([], 2, None, **kwargs))
    with pytest.raises(ValueError, match="batch_size"):
        list(iter_decoded_batches([], 0, None))


def test_to_rgb_is_looked_up_at_call_time(monkeypatch):
    import sktransfer._image_io as image_io

    calls = []
    original = image_io.to_rgb

    def spy(item, index):
        calls.append(index)
        return original(item, index)

    monkeypatch.setattr(image_io, "to_rgb", spy)
    list(iter_decoded_batches([np.zeros((2, 2), np.uint8)] * 5, 2, None, n_workers=2))
    assert sorted(calls) == [0, 1, 2, 3, 4]


# -------------------------------------------------------------- content keys
def test_content_key_is_stable_for_the_same_content(tmp_path):
    image = random_rgb()
    key = content_key(image)
    assert isinstance(key, bytes) and len(key) == 32
    assert content_key(image.copy()) == key
    assert content_key(np.asfortranarray(image)) == key  # layout does not matter
    pil = Image.fromarray(image)
    assert content_key(pil) == content_key(Image.fromarray(image.copy()))
    path = tmp_path / "a.png"
    pil.save(path)
    assert content_key(path) == content_key(str(path))
    # A file and its bytes decode identically, so they share a key.
    assert content_key(path) == content_key(path.read_bytes())


def test_content_key_changes_when_the_file_changes(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(random_rgb(seed=1)).save(path)
    first = content_key(path)
    Image.fromarray(random_rgb(seed=2)).save(path)
    assert content_key(path) != first


def test_content_key_separates_kinds_with_the_same_bytes():
    array = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    raw = array.tobytes()
    keys = {
        content_key(array),
        content_key(raw),
        content_key(Image.fromarray(array)),
        content_key(array.reshape(3, 4)),  # same bytes, other shape
        content_key(array.astype(np.int8)),  # same bytes, other dtype
    }
    assert len(keys) == 5


def test_content_key_includes_the_palette():
    a = Image.new("P", (2, 2), 1)
    b = a.copy()
    a.putpalette([0, 0, 0, 10, 20, 30])
    b.putpalette([0, 0, 0, 90, 90, 90])
    assert a.tobytes() == b.tobytes()
    assert content_key(a) != content_key(b)


def test_content_key_errors(tmp_path):
    with pytest.raises(ImageDecodeError, match="cannot read"):
        content_key(tmp_path / "missing.png")
    with pytest.raises(InvalidInputError, match="NoneType"):
        content_key(None)
