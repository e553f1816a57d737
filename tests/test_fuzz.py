"""Property-based fuzz tests of every input the encoders and fine-tuners accept or refuse.

Invariants, for any generated input:

* the call returns one row per input sample, and row *i* equals (allclose) sample *i*
  encoded alone with ``cache=None``; or
* it raises one of sktransfer's documented exceptions (``InvalidInputError`` and its
  subclass ``ImageDecodeError``) whose message names the position of a sample that
  is refused on its own too;
* nothing hangs (every test runs under a time limit).

How to run::

    pytest tests/test_fuzz.py                                 # quick: few examples, seeded
    pytest -m fuzz                                            # nightly: many more examples

``-m fuzz`` selects the nightly profile (``SKTRANSFER_FUZZ_PROFILE=nightly`` does too,
for any selection). The default profile is derandomized (the same examples on every run, so CI is
reproducible); the nightly profile draws fresh random examples each run.
"""

from __future__ import annotations

import atexit
import functools
import io
import math
import os
import re
import shutil
import sys
import tempfile
import threading
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sktransfer import ImageEncoder, TextEncoder
from sktransfer.exceptions import InvalidInputError
from tests.conftest import TINY_WORDS, build_tiny_sentence_transformer
from tests.input_helpers import release_fifo_readers, with_time_limit

pytestmark = pytest.mark.fuzz

_COMMON = {
    "deadline": None,
    "suppress_health_check": [
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
}
settings.register_profile("sktransfer-default", max_examples=50, derandomize=True, **_COMMON)
settings.register_profile("sktransfer-nightly", max_examples=2000, **_COMMON)


_PROFILE = os.environ.get("SKTRANSFER_FUZZ_PROFILE", "default")
if _PROFILE not in ("default", "nightly"):
    raise ValueError(f"SKTRANSFER_FUZZ_PROFILE must be 'default' or 'nightly', got {_PROFILE!r}")
# Loaded at import: @given takes the settings in force when it decorates a test.
_PREVIOUS_PROFILE = settings._current_profile
settings.load_profile(f"sktransfer-{_PROFILE}")


@pytest.fixture(scope="module", autouse=True)
def _restore_profile():
    """Give other modules back the profile they had."""
    yield
    settings.load_profile(_PREVIOUS_PROFILE or "default")


def _release_stuck_readers():
    if "fifo" in _image_files()["paths"]:
        release_fifo_readers(_image_files()["paths"]["fifo"])


# Under @given: a time limit for every example (hypothesis reruns a failing one).
limited = with_time_limit(60, on_expiry=_release_stuck_readers)


# ------------------------------------------------------------------ models
@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    return build_tiny_sentence_transformer(tmp_path_factory.mktemp("fuzz-text"))


@pytest.fixture(scope="module")
def image_weights(tmp_path_factory):
    import timm
    import torch
    from safetensors.torch import save_file

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        model = timm.create_model("test_efficientnet", pretrained=False)
    path = tmp_path_factory.mktemp("fuzz-image") / "test_efficientnet.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return str(path)


@pytest.fixture(scope="module")
def text_reference(text_model):
    """Encodes one text alone, with no cache: the ground truth of every row."""
    encoder = TextEncoder(text_model, cache=None, progress=False, on_missing="empty").fit()
    memo: dict[str, np.ndarray] = {}

    def encode_alone(text):
        if text not in memo:
            memo[text] = encoder.transform([text])[0]
        return memo[text]

    return encode_alone


@pytest.fixture(scope="module")
def image_encoder_factory(image_weights):
    def make(**params):
        return ImageEncoder(
            "test_efficientnet", weights=image_weights, image_size=32, progress=False, **params
        ).fit()

    return make


@pytest.fixture(scope="module")
def image_reference(image_encoder_factory):
    """One image alone with no cache: its row, or the exception it raises."""
    encoder = image_encoder_factory(cache=None)

    def encode_alone(item):
        try:
            return encoder.transform([item])[0]
        except InvalidInputError as exc:
            return exc

    return encode_alone


# --------------------------------------------------------------- text data
# Every Unicode category that has tripped a tokenizer somewhere: controls and
# NUL, combining marks, right-to-left text, emoji (astral plane), and lone
# surrogates (category Cs), which are not valid text at all.
_TEXT_CHARS = st.one_of(
    st.characters(),  # any code point but lone surrogates (hypothesis leaves them out)
    st.integers(0xD800, 0xDFFF).map(chr),  # lone surrogates
    st.sampled_from(
        ["\x00", "\t", "\n", "\u0301", "\u202e", "\u200f", "\ufeff", "\U0001f600", "\udc80"]
    ),
    st.sampled_from(list("abc .!?")),
)
_TEXTS = st.one_of(
    st.text(_TEXT_CHARS, max_size=20),
    st.lists(st.sampled_from(TINY_WORDS), max_size=6).map(" ".join),
    st.just(""),
    st.builds(lambda word, n: " ".join([word] * n), st.sampled_from(TINY_WORDS), st.just(400)),
)
_MISSING = st.sampled_from([None, float("nan"), pd.NA, np.nan])
_NOT_TEXT = st.one_of(
    st.integers(), st.binary(max_size=4), st.just(["nested"]), st.just({"a": 1}), st.just(1.5)
)
_ENTRY = st.one_of(_TEXTS, _TEXTS, _TEXTS, _MISSING, _NOT_TEXT)
_INDEXES = st.sampled_from(["default", "strings", "negative", "duplicates", "shifted"])


def _index(kind: str, n: int):
    return {
        "default": None,
        "strings": [f"row{i}" for i in range(n)],
        "negative": [-i - 1 for i in range(n)],
        "duplicates": [0] * n,
        "shifted": list(range(100, 100 + n)),
    }[kind]


@st.composite
def text_inputs(draw):
    """(container as passed to transform, the entries in order, container kind)."""
    values = draw(st.lists(_ENTRY, min_size=1, max_size=5))
    kind = draw(st.sampled_from(["list", "tuple", "object", "str", "series", "frame"]))
    if kind == "str" and not all(isinstance(v, str) for v in values):
        kind = "object"
    if kind == "list":
        return list(values), values, kind
    if kind == "tuple":
        return tuple(values), values, kind
    if kind in ("object", "str"):
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return (array.astype(str) if kind == "str" else array), values, kind
    series = pd.Series(values, index=_index(draw(_INDEXES), len(values)), dtype=object)
    return (series.to_frame("text") if kind == "frame" else series), values, kind


def _is_missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _has_surrogate(value) -> bool:
    return isinstance(value, str) and any(0xD800 <= ord(c) <= 0xDFFF for c in value)


def _text_bad_positions(values, on_missing: str) -> set[int]:
    bad = set()
    for i, value in enumerate(values):
        if isinstance(value, str):
            if _has_surrogate(value):
                bad.add(i)
        elif _is_missing(value):
            if on_missing == "raise":
                bad.add(i)
        else:
            bad.add(i)
    return bad


def _named_positions(message: str) -> set[int]:
    """Every integer the message names right after 'position(s)' or in a list after it."""
    message = re.sub(r"\(index [^)]*\)", "", message)  # pandas labels are not positions
    found = set()
    for match in re.finditer(r"positions? ([0-9][0-9, ()a-zA-Z'\-]*)", message):
        found |= {int(n) for n in re.findall(r"(?<![\w'-])(\d+)(?![\w'])", match.group(1))}
    return found


def _check_text_rows(out, values, reference):
    assert out.shape[0] == len(values)
    for i, value in enumerate(values):
        text = "" if _is_missing(value) else str(value)
        np.testing.assert_allclose(out[i], reference(text), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------- text tests
_ODD_TEXTS = ["\x00", "\u202eabc", "e\u0301", "\U0001f600", "", "\t\n"]


@pytest.fixture(scope="module")
def text_encoders(text_model):
    return {
        (cache, on_missing): TextEncoder(
            text_model, cache=cache, on_missing=on_missing, progress=False
        ).fit()
        for cache in ("memory", None)
        for on_missing in ("raise", "empty")
    }


@given(
    data=text_inputs(),
    cache=st.sampled_from(["memory", None]),
    on_missing=st.sampled_from(["raise", "empty"]),
)
@example(  # the reported case: a lone surrogate in a Series with its own index
    data=(
        pd.Series(["ok", "bad \ud800"], index=["a", "b"], dtype=object),
        ["ok", "bad \ud800"],
        "series",
    ),
    cache="memory",
    on_missing="raise",
)
@example(
    data=(np.array(_ODD_TEXTS), _ODD_TEXTS, "str"),
    cache=None,
    on_missing="raise",
)
@example(
    data=(
        pd.Series(["a", None, pd.NA, np.nan, 3, b"x"], index=[5, 4, 3, 2, 1, 0]).to_frame("t"),
        ["a", None, pd.NA, np.nan, 3, b"x"],
        "frame",
    ),
    cache="memory",
    on_missing="empty",
)
@limited
def test_text_encoder_rows_match_alone_or_error_names_position(
    text_encoders, text_reference, data, cache, on_missing
):
    X, values, _ = data
    bad = _text_bad_positions(values, on_missing)
    encoder = text_encoders[(cache, on_missing)]
    if bad:
        with pytest.raises(InvalidInputError) as info:
            encoder.transform(X)
        assert _named_positions(str(info.value)) & bad, str(info.value)
        return
    _check_text_rows(encoder.transform(X), values, text_reference)


@given(
    X=st.one_of(
        st.text(max_size=5),
        st.binary(max_size=5),
        st.integers(),
        st.none(),
        st.just({"a"}),
        st.just({"a": "b"}),
        st.just(np.array([["a", "b"]], dtype=object)),
        st.just(np.zeros((2, 2, 1), dtype=object)),
        st.just(pd.DataFrame({"a": ["x"], "b": ["y"]})),
        st.just(t for t in ["a"]),  # generators are refused: rows must line up
    )
)
@limited
def test_text_encoder_refuses_wrong_containers(text_encoders, X):
    with pytest.raises(InvalidInputError, match=r"TextEncoder (expects|needs)"):
        text_encoders[("memory", "raise")].transform(X)


# ------------------------------------------------------------ image data
_PIL_MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16", "F", "CMYK", "PA", "La", "YCbCr"]
_DTYPES = ["uint8", "uint16", "float32", "float64", "bool", "int64", "int8", "complex64"]


@st.composite
def image_arrays(draw):
    dtype = np.dtype(draw(st.sampled_from(_DTYPES)))
    h, w = draw(st.integers(0, 9)), draw(st.integers(1, 9))
    layout = draw(st.sampled_from(["hw", "hw1", "hw3", "hw4", "chw", "hw2", "flat", "4d"]))
    shape = {
        "hw": (h, w),
        "hw1": (h, w, 1),
        "hw3": (h, w, 3),
        "hw4": (h, w, 4),
        "chw": (3, h + 5, w + 5),
        "hw2": (h, w, 2),
        "flat": (h * w,),
        "4d": (1, h, w, 3),
    }[layout]
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from(["in-range", "out-of-range", "nan"]))
    if dtype.kind == "f" or dtype.kind == "c":
        values = rng.random(shape)
        if scale == "out-of-range":
            values = values * 300
        elif scale == "nan" and values.size:
            values.flat[0] = np.nan
    elif dtype.kind == "b":
        values = rng.random(shape) > 0.5
    else:
        high = {"uint8": 256, "uint16": 65536, "int8": 128}.get(dtype.name, 256)
        values = rng.integers(0, high, shape)
        if scale == "out-of-range" and dtype.name == "int64" and values.size:
            values.flat[0] = -5
    return values.astype(dtype)


@st.composite
def pil_images(draw):
    from PIL import Image

    mode = draw(st.sampled_from(_PIL_MODES))
    size = (draw(st.integers(1, 8)), draw(st.integers(1, 8)))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    base = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    if mode in ("I;16",):
        return Image.fromarray(rng.integers(0, 65536, size[::-1]).astype(np.uint16))
    if mode == "F":
        return Image.fromarray(rng.random(size[::-1]).astype(np.float32))
    if mode == "P" and draw(st.booleans()):
        image = base.convert("P")
        image.info["transparency"] = 0
        return image
    try:
        return base.convert(mode)
    except ValueError:  # a mode PIL cannot convert to from RGB
        return Image.new(mode, size)


@functools.cache
def _image_files() -> dict:
    """Paths of every kind: images, truncated and non-image files, missing, special.

    Made once per process (strategies and explicit examples name them), removed at exit.
    """
    from PIL import Image

    folder = tempfile.mkdtemp(prefix="sktransfer-fuzz-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 256, (12, 10, 3), np.uint8))
    png = io.BytesIO()
    picture.save(png, format="PNG")
    jpeg = io.BytesIO()
    picture.save(jpeg, format="JPEG")
    files = {
        "png": png.getvalue(),
        "jpeg": jpeg.getvalue(),
        "truncated": png.getvalue()[: len(png.getvalue()) // 2],
        "text": b"not an image at all\n",
        "empty": b"",
    }
    paths = {}
    for name, data in files.items():
        paths[name] = os.path.join(folder, f"{name}.png")
        with open(paths[name], "wb") as file:
            file.write(data)
    paths["missing"] = os.path.join(folder, "missing.png")
    paths["directory"] = folder
    if sys.platform != "win32":
        paths["fifo"] = os.path.join(folder, "pipe.png")
        os.mkfifo(paths["fifo"])
        paths["device"] = "/dev/zero"
    return {"paths": paths, "bytes": files}


def _path(name: str) -> str:
    return _image_files()["paths"][name]


def image_items():
    from pathlib import Path

    files = _image_files()
    paths = sorted(files["paths"].items())
    blobs = sorted(files["bytes"].items())
    return st.one_of(
        image_arrays(),
        pil_images(),
        st.sampled_from(paths).map(lambda kv: kv[1]),
        st.sampled_from(paths).map(lambda kv: Path(kv[1])),
        st.sampled_from(blobs).map(lambda kv: kv[1]),
        st.sampled_from(blobs).map(lambda kv: bytearray(kv[1])),
        st.binary(max_size=40),
        st.sampled_from([None, float("nan"), 3, [[1, 2]], "", "relative/missing.png"]),
    )


def _check_image_call(call, items, reference, on_error="raise"):
    """Run ``call`` and check the image invariants against each item encoded alone."""
    alone = [reference(item) for item in items]
    refused = {i for i, row in enumerate(alone) if isinstance(row, Exception)}
    if refused and on_error == "raise":
        with pytest.raises(InvalidInputError) as info:
            call()
        position = re.match(r"image (\d+): ", str(info.value))
        assert position, str(info.value)
        assert int(position.group(1)) in refused, str(info.value)
        return
    out = call()
    assert out.shape[0] == len(items)
    for i, row in enumerate(alone):
        if i in refused:
            assert np.isnan(out[i]).all()
        else:
            np.testing.assert_allclose(out[i], row, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------- image tests
@pytest.fixture(scope="module")
def image_encoders(image_encoder_factory):
    return {
        (cache, on_error): image_encoder_factory(cache=cache, on_error=on_error)
        for cache in ("memory", None)
        for on_error in ("raise", "nan")
    }


_SPECIAL = ["fifo", "device"] if sys.platform != "win32" else []


@given(
    items=st.lists(image_items(), min_size=1, max_size=4),
    container=st.sampled_from(["list", "tuple", "series", "object-array"]),
    index=_INDEXES,
    cache=st.sampled_from(["memory", None]),
    on_error=st.sampled_from(["raise", "nan"]),
)
@example(  # the reported hangs: a FIFO and a device, with and without the cache
    items=[np.zeros((4, 4), np.uint8)] + [_path(name) for name in _SPECIAL],
    container="list",
    index="default",
    cache="memory",
    on_error="raise",
)
@example(
    items=[_path(name) for name in ["png", *_SPECIAL, "truncated", "text", "directory"]],
    container="series",
    index="strings",
    cache=None,
    on_error="nan",
)
@example(
    items=[_path("jpeg"), np.full((3, 3), 2.0), np.zeros((3, 5, 5), np.uint8)],
    container="object-array",
    index="default",
    cache="memory",
    on_error="raise",
)
@limited
def test_image_encoder_rows_match_alone_or_error_names_position(
    image_encoders, image_reference, items, container, index, cache, on_error
):
    if container == "tuple":
        X = tuple(items)
    elif container == "series":
        X = pd.Series(_object_array(items), index=_index(index, len(items)))
    elif container == "object-array":
        X = _object_array(items)
    else:
        X = items
    encoder = image_encoders[(cache, on_error)]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "ImageEncoder could not decode", UserWarning)
        _check_image_call(lambda: encoder.transform(X), items, image_reference, on_error)


def _object_array(items) -> np.ndarray:
    array = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):  # item by item: arrays must not broadcast
        array[i] = item
    return array


@given(batch=image_arrays().filter(lambda a: a.ndim >= 2), n=st.integers(1, 3))
@limited
def test_image_encoder_array_batches(image_encoders, image_reference, batch, n):
    """Numeric batches (n, H, W), (n, H, W, C), (n, C, H, W): rows match list(batch) items."""
    X = np.stack([batch] * n)
    encoder = image_encoders[("memory", "raise")]
    try:
        out = encoder.transform(X)
    except InvalidInputError as exc:  # refused: the container's shape, or one image
        from sktransfer._image_io import as_image_list

        message = str(exc)
        item = re.match(r"image (\d+): ", message)
        if item:
            refused = image_reference(as_image_list(X)[int(item.group(1))])
            assert isinstance(refused, InvalidInputError), message
        else:
            assert re.search(r"shape|dtype", message), message
        return
    from sktransfer._image_io import as_image_list

    items = as_image_list(X)
    assert out.shape[0] == n == len(items)
    for i, item in enumerate(items):
        np.testing.assert_allclose(out[i], image_reference(item), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------ fine-tuners
@pytest.fixture(scope="module")
def text_classifier(text_model):
    from sktransfer.finetune import TextClassifier

    texts = [f"{w} movie" for w in TINY_WORDS[:16]]
    y = np.arange(16) % 2
    return TextClassifier(
        text_model, epochs=1, batch_size=8, early_stopping=False, random_state=0
    ).fit(texts, y)


@pytest.fixture(scope="module")
def image_classifier(image_weights):
    from sktransfer.finetune import ImageClassifier

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(8)]
    return ImageClassifier(
        "test_efficientnet",
        weights=image_weights,
        image_size=32,
        epochs=1,
        batch_size=4,
        early_stopping=False,
        random_state=0,
    ).fit(images, np.arange(8) % 2)


@given(data=text_inputs())
@example(
    data=(pd.Series(["good", "\udfff"], index=[9, 8], dtype=object), ["good", "\udfff"], "series")
)
@example(data=(("a\x00b", "\u202e", ""), ("a\x00b", "\u202e", ""), "tuple"))
@limited
def test_text_classifier_predict_rows_match_alone(text_classifier, data):
    X, values, _ = data
    bad = _text_bad_positions(values, "raise")
    if bad:
        with pytest.raises(InvalidInputError) as info:
            text_classifier.predict_proba(X)
        assert _named_positions(str(info.value)) & bad, str(info.value)
        return
    out = text_classifier.predict_proba(X)
    assert out.shape == (len(values), 2)
    for i, value in enumerate(values):
        alone = text_classifier.predict_proba([value])[0]
        np.testing.assert_allclose(out[i], alone, rtol=1e-4, atol=1e-5)


@given(items=st.lists(image_items(), min_size=1, max_size=4))
@example(items=[np.zeros((4, 4), np.uint8), *[_path(name) for name in _SPECIAL]])
@example(items=[_path("png"), _path("truncated"), b"", np.full((3, 3), np.nan)])
@limited
def test_image_classifier_predict_rows_match_alone(image_classifier, items):

    def alone(item):
        try:
            return image_classifier.predict_proba([item])[0]
        except InvalidInputError as exc:
            return exc

    _check_image_call(lambda: image_classifier.predict_proba(items), items, alone)


@given(
    bad=st.one_of(_MISSING, _NOT_TEXT, st.just("bad \ud800"), st.just("\udfff")),
    position=st.integers(0, 5),
)
@limited
def test_text_classifier_fit_names_the_bad_position(text_model, bad, position):
    from sktransfer.finetune import TextClassifier

    texts = [f"{w} film" for w in TINY_WORDS[:6]]
    texts[position] = bad
    model = TextClassifier(text_model, epochs=1, batch_size=4, early_stopping=False)
    with pytest.raises(InvalidInputError) as info:
        model.fit(texts, np.arange(6) % 2)
    assert position in _named_positions(str(info.value)), str(info.value)


@given(data=st.data(), position=st.integers(0, 5))
@limited
def test_image_classifier_fit_names_the_bad_position(
    image_weights, image_reference, data, position
):
    from sktransfer.finetune import ImageClassifier

    paths = sorted(_image_files()["paths"].values())
    candidates = st.one_of(st.sampled_from(paths), st.binary(max_size=20), image_arrays())
    bad = data.draw(candidates.filter(lambda item: isinstance(image_reference(item), Exception)))
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(6)]
    images[position] = bad
    model = ImageClassifier(
        "test_efficientnet",
        weights=image_weights,
        image_size=32,
        epochs=1,
        batch_size=4,
        early_stopping=data.draw(st.booleans()),
        validation_fraction=0.5,
    )
    with pytest.raises(InvalidInputError, match=rf"^image {position}: "):
        model.fit(images, np.arange(6) % 2)


# ------------------------------------------------------------------ cache
@given(
    texts=st.lists(
        st.lists(st.sampled_from(TINY_WORDS), max_size=4).map(" ".join), min_size=1, max_size=12
    ),
    n_threads=st.integers(2, 4),
    where=st.sampled_from(["memory", "disk"]),
)
@limited
def test_concurrent_writers_never_serve_a_wrong_row(
    text_model, text_reference, texts, n_threads, where, tmp_path_factory
):
    """Threads encoding overlapping subsets through one store all get the right rows."""
    cache = "memory" if where == "memory" else str(tmp_path_factory.mktemp("fuzz-cache"))
    rng = np.random.default_rng(len(texts) * 31 + n_threads)
    subsets = [list(rng.choice(texts, size=len(texts))) for _ in range(n_threads)]
    results: list = [None] * n_threads
    errors: list = []

    def work(k):
        try:
            encoder = TextEncoder(text_model, cache=cache, progress=False).fit()
            results[k] = encoder.transform(subsets[k])
        except BaseException as exc:  # reported below, with the thread's subset
            errors.append((k, exc))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a writer hangs"
    assert not errors, errors
    for subset, out in zip(subsets, results, strict=True):
        _check_text_rows(out, subset, text_reference)


@given(
    garbage=st.one_of(
        st.binary(min_size=1, max_size=200), st.just(b"SQLite format 3\x00" + b"\xff" * 100)
    ),
    mode=st.sampled_from(["replace", "truncate", "append"]),
)
@limited
def test_corrupt_cache_file_is_reported_or_recovered(
    text_model, text_reference, garbage, mode, tmp_path_factory
):
    """A damaged disk cache never yields a wrong row: it recovers or raises with the path."""
    from sktransfer.cache import DB_NAME

    folder = tmp_path_factory.mktemp("fuzz-corrupt")
    texts = ["a great movie", "an awful film", "the cat sat"]
    TextEncoder(text_model, cache=str(folder), progress=False).fit().transform(texts)
    db = folder / DB_NAME
    data = db.read_bytes()
    if mode == "replace":
        db.write_bytes(garbage)
    elif mode == "truncate":
        db.write_bytes(data[: len(data) // 2])
    else:
        db.write_bytes(data + garbage)
    for suffix in ("-wal", "-shm"):
        extra = folder / (DB_NAME + suffix)
        if extra.exists():
            extra.unlink()
    try:
        out = TextEncoder(text_model, cache=str(folder), progress=False).fit().transform(texts)
    except (InvalidInputError, OSError, ValueError) as exc:
        assert str(folder) in str(exc) or DB_NAME in str(exc), str(exc)
        return
    _check_text_rows(out, texts, text_reference)
