"""Start records of ``ImageEncoder(backend="onnx" | "openvino")``: a start without torch.

The first ``fit`` exports and checks the model, then writes a start record; a
later ``fit`` of an equal encoder (after the process' shared networks and
runners are forgotten, as in a new process) starts from it: decoding and
timm's evaluation transform in PIL and numpy, the export run by the runtime.
Every comparison runs with ``cache=None`` unless the cache is what is tested.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import sktransfer  # noqa: E402
from sktransfer import _lean, _lean_image  # noqa: E402
from sktransfer._optional import optional_available  # noqa: E402
from sktransfer.exceptions import ImageDecodeError  # noqa: E402
from tests.onnx_helpers import (  # noqa: E402, F401
    RUNTIMES,
    by_runtime,
    copy_exports,
    fresh_runners,
    make_exports,
    new_process,
)

REPO_ROOT = Path(sktransfer.__file__).resolve().parents[1]


def _image(weights, **params):
    defaults = {"image_size": 32, "batch_size": 5, "cache": None, "progress": False}
    return sktransfer.ImageEncoder("test_efficientnet", weights=weights, **{**defaults, **params})


@pytest.fixture(scope="module")
def _made_exports(tmp_path_factory, tiny_image_weights):
    """The export of ``_image(tiny_image_weights)``, made once for the module."""
    return make_exports(
        tmp_path_factory.mktemp("image-exports"),
        lambda: _image(tiny_image_weights, backend="onnx").fit(),
    )


@pytest.fixture
def exported(_made_exports, tmp_path):
    """The test's data home starts with a copy of that export, and no start record.

    For tests that are not about making the export: their first fit finds it,
    checks it against torch and writes the record, as in a later process.
    """
    copy_exports(_made_exports, tmp_path / "data")


def _records(tmp_path) -> list[Path]:
    return sorted((tmp_path / "data" / "onnx" / "start").glob("*.json"))


def _export(tmp_path) -> Path:
    (export,) = (tmp_path / "data" / "onnx").glob("*/model.onnx")
    return export


def _picture(rng, height, width):
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / max(width, 1), y * 255 / max(height, 1), (x + y) % 256], axis=2)
    return np.clip(base + rng.normal(0, 30, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def varied_images(tmp_path):
    """Arrays of several sizes and kinds, PIL images, files (paths), bytes, a large JPEG."""
    from PIL import Image

    rng = np.random.default_rng(3)
    folder = tmp_path / "images"
    folder.mkdir()
    png = folder / "wide.png"
    Image.fromarray(_picture(rng, 30, 90)).save(png)
    jpeg = folder / "large.jpg"  # draft-decoded: its shorter side is over 4x the resize
    Image.fromarray(_picture(rng, 300, 410)).save(jpeg, quality=92)
    buffer = io.BytesIO()
    Image.fromarray(_picture(rng, 64, 48)).save(buffer, "JPEG")
    rgba = np.concatenate([_picture(rng, 41, 37), rng.integers(0, 256, (41, 37, 1), np.uint8)], 2)
    palette = Image.fromarray(_picture(rng, 50, 70)).convert("P", palette=Image.Palette.ADAPTIVE)
    return [
        _picture(rng, 40, 50),
        _picture(rng, 120, 33),  # tall
        _picture(rng, 7, 5),  # tiny
        _picture(rng, 61, 97),  # odd sizes
        rgba,
        _picture(rng, 44, 44)[:, :, 0],  # grey
        _picture(rng, 36, 52).astype(np.float32) / 255,
        Image.fromarray(_picture(rng, 80, 64)),
        Image.fromarray(_picture(rng, 33, 77)[:, :, 1]),  # mode "L"
        palette,
        str(png),
        jpeg,  # a Path
        buffer.getvalue(),  # bytes
    ]


def _cosines(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


# ----------------------------------------------------------- the record
def test_the_first_fit_writes_a_record_of_what_transform_needs(tiny_image_weights, tmp_path):
    assert _records(tmp_path) == []
    encoder = _image(tiny_image_weights, backend="onnx").fit()
    assert not _lean.is_lean(encoder._network)  # the first fit loads torch
    (record_file,) = _records(tmp_path)
    record = json.loads(record_file.read_text())
    assert record["kind"] == "image" and record["format"] == _lean.RECORD_FORMAT
    assert record["identity"] == encoder._weights_identity
    assert record["embedding_dim"] == encoder.embedding_dim_
    assert record["inputs"] == ["input"]
    export = _export(tmp_path)
    assert record["export"] == export.parent.name
    assert record["export_sha256"] == _lean.export_digest(export)
    assert _lean_image._data_config(record) == encoder.data_config_
    assert record["preprocess"]["crop"] == [32, 32]
    assert record["preprocess"]["interpolation"] == encoder.data_config_["interpolation"]
    assert record["jpeg_draft"] is True
    assert record["draft_min_side"] == encoder._draft_min_side()
    # A torch encoder writes nothing.
    shutil.rmtree(tmp_path / "data")
    _image(tiny_image_weights).fit()
    assert _records(tmp_path) == []


@by_runtime
@pytest.mark.usefixtures("exported")
def test_a_second_fit_starts_from_the_record_and_computes_the_same(
    tiny_image_weights, varied_images, backend
):
    exact = _image(tiny_image_weights, precision="float32").fit().transform(varied_images)
    first = _image(tiny_image_weights, backend=backend).fit()
    expected = first.transform(varied_images)
    new_process()
    lean = _image(tiny_image_weights, backend=backend).fit()
    assert _lean.is_lean(lean._network)
    got = lean.transform(varied_images)
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    assert _cosines(got, exact).min() >= 0.9999
    assert np.linalg.norm(got[0] - got[1]) > 1e-3  # not a constant output
    assert lean.model_fingerprint_ == first.model_fingerprint_
    assert lean.data_config_ == first.data_config_
    assert (lean.model_source_, lean.model_reference_) == (
        first.model_source_,
        first.model_reference_,
    )
    # One image at a time (other batch sizes) gives the same rows.
    single = lean.set_params(batch_size=1).transform(varied_images)
    np.testing.assert_allclose(single, expected, rtol=0, atol=1e-5)


@pytest.mark.usefixtures("exported")
def test_the_start_shares_the_cache_keys_of_the_torch_path(tiny_image_weights, varied_images):
    first = _image(tiny_image_weights, backend="onnx", cache="memory").fit()
    expected = first.transform(varied_images)
    new_process()
    lean = _image(tiny_image_weights, backend="onnx", cache="memory").fit()
    assert _lean.is_lean(lean._network)
    assert lean.model_fingerprint_ == first.model_fingerprint_
    np.testing.assert_array_equal(lean.transform(varied_images), expected)
    assert lean.cache_info().hits == len(varied_images)  # rows the torch path stored
    assert lean.cache_info().misses == 0


@pytest.mark.usefixtures("exported")
def test_the_start_imports_neither_torch_nor_timm_in_a_fresh_process(
    tiny_image_weights, varied_images, tmp_path
):
    _image(tiny_image_weights, backend="onnx").fit()  # writes the record
    new_process()
    lean = _image(tiny_image_weights, backend="onnx").fit()
    assert _lean.is_lean(lean._network)
    items = [item for item in varied_images if isinstance(item, (str, Path, np.ndarray))]
    expected = lean.transform(items)
    arrays = [item for item in items if isinstance(item, np.ndarray)]
    np.savez(tmp_path / "arrays.npz", *arrays)
    paths = [str(item) for item in items if not isinstance(item, np.ndarray)]
    out = tmp_path / "child.npy"
    child = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        import sktransfer
        from sktransfer import _lean

        with np.load({str(tmp_path / "arrays.npz")!r}) as saved:
            arrays = [saved[f"arr_{{i}}"] for i in range(len(saved.files))]
        encoder = sktransfer.ImageEncoder(
            "test_efficientnet", weights={tiny_image_weights!r}, image_size=32,
            batch_size=5, cache=None, progress=False, backend="onnx",
        ).fit()
        assert _lean.is_lean(encoder._network), "not started from the record"
        features = encoder.transform(arrays + {paths!r})
        heavy = [m for m in ("torch", "timm", "torchvision", "transformers") if m in sys.modules]
        assert not heavy, f"imported {{heavy}}"
        np.save({str(out)!r}, features)
        print(encoder.model_fingerprint_)
        """
    )
    env = dict(os.environ, SKTRANSFER_DATA=str(tmp_path / "data"), PYTHONPATH=str(REPO_ROOT))
    done = subprocess.run(
        [sys.executable, "-c", child],
        env=env,
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == lean.model_fingerprint_
    np.testing.assert_array_equal(np.load(out), expected)


# ------------------------------------------------------------- the guards
@pytest.mark.usefixtures("exported")
def test_a_changed_export_is_never_run_from_the_record(tiny_image_weights, tmp_path):
    _image(tiny_image_weights, backend="onnx").fit()
    export = _export(tmp_path)
    data = bytearray(export.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte changed
    export.write_bytes(bytes(data))
    new_process()
    assert _lean_image.start_image(_image(tiny_image_weights, backend="onnx")) is None


@pytest.mark.usefixtures("exported")
def test_a_damaged_export_falls_back_to_the_torch_path(tiny_image_weights, varied_images, tmp_path):
    expected = _image(tiny_image_weights, backend="onnx").fit().transform(varied_images)
    export = _export(tmp_path)
    export.write_bytes(export.read_bytes()[:1000])  # cut short
    new_process()
    with pytest.warns(UserWarning, match="could not be used.*exported again"):
        encoder = _image(tiny_image_weights, backend="onnx").fit()
    assert not _lean.is_lean(encoder._network)
    np.testing.assert_allclose(encoder.transform(varied_images), expected, atol=1e-6)
    # The export made again has its own record: the next start is lean again.
    new_process()
    again = _image(tiny_image_weights, backend="onnx").fit()
    assert _lean.is_lean(again._network)
    np.testing.assert_allclose(again.transform(varied_images), expected, atol=1e-6)


@pytest.mark.usefixtures("exported")
def test_a_start_that_was_shared_notices_a_change_on_disk(tiny_image_weights, tmp_path):
    _image(tiny_image_weights, backend="onnx").fit()
    new_process()
    assert _lean.is_lean(_image(tiny_image_weights, backend="onnx").fit()._network)
    export = _export(tmp_path)
    data = bytearray(export.read_bytes())
    data[-1] ^= 0x01
    export.write_bytes(bytes(data))
    # LOADED_NETWORKS still holds the start; its stamps no longer match.
    assert _lean_image.start_image(_image(tiny_image_weights, backend="onnx")) is None


@pytest.mark.usefixtures("exported")
def test_a_preprocessing_that_disagrees_writes_no_record(tiny_image_weights, tmp_path, monkeypatch):
    real = _lean_image.LeanPreprocess.__call__

    def one_pixel_off(self, image):
        return np.roll(real(self, image), 1, axis=2)

    monkeypatch.setattr(_lean_image.LeanPreprocess, "__call__", one_pixel_off)
    encoder = _image(tiny_image_weights, backend="onnx").fit()
    assert encoder.backend_ == "onnx" and encoder._runner().source == str(_export(tmp_path))
    assert _records(tmp_path) == []
    new_process()
    assert not _lean.is_lean(_image(tiny_image_weights, backend="onnx").fit()._network)


@pytest.mark.usefixtures("exported")
def test_an_unknown_transform_writes_no_record(tiny_image_weights, tmp_path, monkeypatch):
    monkeypatch.setattr(_lean_image, "preprocess_steps", lambda transform: None)
    _image(tiny_image_weights, backend="onnx").fit()
    assert _records(tmp_path) == []


def test_random_weights_write_no_record(tmp_path):
    params = {"image_size": 32, "cache": None, "progress": False, "backend": "onnx"}
    sktransfer.ImageEncoder("test_efficientnet", pretrained=False, **params).fit()
    assert _records(tmp_path) == []


@pytest.mark.usefixtures("exported")
def test_another_record_never_serves_other_parameters(tiny_image_weights, tmp_path):
    _image(tiny_image_weights, backend="onnx").fit()
    new_process()
    other = _image(tiny_image_weights, backend="onnx", image_size=40).fit()
    assert not _lean.is_lean(other._network)
    assert other.data_config_["input_size"] == (3, 40, 40)
    assert len(_records(tmp_path)) == 2
    new_process()
    no_draft = _image(tiny_image_weights, backend="onnx", jpeg_draft=False).fit()
    assert not _lean.is_lean(no_draft._network)


# ------------------------------------------------------ transform's contract
@pytest.mark.usefixtures("exported")
def test_bad_images_fail_as_on_the_torch_path(tiny_image_weights, varied_images, tmp_path):
    items = [varied_images[0], b"not an image", str(tmp_path / "absent.png"), varied_images[3]]
    torch_path = _image(tiny_image_weights, backend="onnx").fit()
    with pytest.raises(ImageDecodeError) as expected_error:
        torch_path.transform(items)
    new_process()
    lean = _image(tiny_image_weights, backend="onnx").fit()
    assert _lean.is_lean(lean._network)
    with pytest.raises(ImageDecodeError) as error:
        lean.transform(items)
    assert str(error.value) == str(expected_error.value)
    assert "image 1" in str(error.value)
    lean.set_params(on_error="nan")
    with pytest.warns(UserWarning, match=r"could not decode 2 image\(s\) at positions \[1, 2\]"):
        out = lean.transform(items)
    assert np.isnan(out[1:3]).all() and np.isfinite(out[[0, 3]]).all()
    expected = torch_path.set_params(on_error="nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_allclose(out, expected.transform(items), atol=1e-5)


@pytest.mark.usefixtures("exported")
def test_model_loads_the_timm_model_on_demand(tiny_image_weights):
    import torch

    _image(tiny_image_weights, backend="onnx").fit()
    new_process()
    lean = _image(tiny_image_weights, backend="onnx").fit()
    assert _lean.is_lean(lean._network)
    model = lean.model_
    assert isinstance(model, torch.nn.Module)
    assert model.pretrained_cfg["architecture"] == "test_efficientnet"


@pytest.mark.usefixtures("exported")
def test_a_pickled_lean_encoder_starts_lean_again(tiny_image_weights, varied_images):
    _image(tiny_image_weights, backend="onnx").fit()
    new_process()
    lean = _image(tiny_image_weights, backend="onnx").fit()
    expected = lean.transform(varied_images)
    new_process()
    restored = pickle.loads(pickle.dumps(lean))
    np.testing.assert_array_equal(restored.transform(varied_images), expected)
    assert _lean.is_lean(restored._network)
    assert restored.model_fingerprint_ == lean.model_fingerprint_


# ------------------------------------------------------- how weights are found
REPO = "timm/test_efficientnet.r160_in1k"  # what timm names for test_efficientnet
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hf_cache(tmp_path, monkeypatch, tiny_image_weights):
    """A Hugging Face cache holding the tiny weights as timm's Hub repository."""
    import huggingface_hub.constants
    import timm
    from timm.models._hub import save_config_for_hf

    hub = tmp_path / "hf-hub"
    snapshot = hub / f"models--{REPO.replace('/', '--')}" / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    save_config_for_hf(
        timm.create_model("test_efficientnet", pretrained=False), str(snapshot / "config.json")
    )
    shutil.copy(tiny_image_weights, snapshot / "model.safetensors")
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text(COMMIT)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub))
    return snapshot


@pytest.mark.parametrize("form", ["registry", "hf-hub", "local-dir"])
@pytest.mark.usefixtures("exported")
def test_every_way_of_naming_cached_weights_starts_lean(form, hf_cache, varied_images):
    model = {
        "registry": "test_efficientnet",
        "hf-hub": f"hf-hub:{REPO}",
        "local-dir": f"local-dir:{hf_cache}",
    }[form]
    params = {"image_size": 32, "cache": None, "progress": False, "backend": "onnx"}
    first = sktransfer.ImageEncoder(model, **params).fit()
    assert first.model_source_ == ("local" if form == "local-dir" else "hf-cache")
    expected = first.transform(varied_images)
    new_process()
    lean = sktransfer.ImageEncoder(model, **params).fit()
    assert _lean.is_lean(lean._network)
    assert (lean.model_source_, lean.model_reference_) == (
        first.model_source_,
        first.model_reference_,
    )
    assert lean.model_fingerprint_ == first.model_fingerprint_
    np.testing.assert_allclose(lean.transform(varied_images), expected, rtol=0, atol=1e-5)


@pytest.mark.usefixtures("exported")
def test_a_registry_name_without_its_hint_takes_the_torch_path(hf_cache, tmp_path):
    params = {"image_size": 32, "cache": None, "progress": False, "backend": "onnx"}
    sktransfer.ImageEncoder("test_efficientnet", **params).fit()
    (hint,) = (tmp_path / "data" / "onnx" / "start" / "names").glob("*.json")
    assert json.loads(hint.read_text())["hf_hub_id"] == REPO
    hint.unlink()
    new_process()
    encoder = sktransfer.ImageEncoder("test_efficientnet", **params)
    assert _lean_image.start_image(encoder) is None


# ------------------------------------------------------ the numpy transform
@pytest.mark.parametrize(
    "config",
    [
        {},
        {"input_size": (3, 224, 224)},
        {"input_size": (3, 37, 37), "crop_pct": 1.0},
        {"input_size": (3, 64, 64), "crop_pct": 1.15},  # the crop pads
        {"input_size": (3, 48, 48), "interpolation": "bilinear"},
        {"input_size": (3, 48, 48), "crop_mode": "squash"},
        {"input_size": (3, 40, 40), "interpolation": "nearest", "mean": (0.1, 0.2, 0.3)},
    ],
)
def test_the_numpy_transform_equals_timms(config):
    import timm
    import timm.data

    from sktransfer._adapters.image import ImageAdapter

    adapter = ImageAdapter("test_vit", pretrained=False, jpeg_draft=True)
    adapter.attach(timm.create_model("test_vit", pretrained=False, num_classes=0))
    adapter.data_config = {**adapter.data_config, **config}
    adapter.eval_transform = timm.data.create_transform(**adapter.data_config, is_training=False)
    steps = _lean_image.preprocess_steps(adapter.eval_transform)
    assert steps is not None
    assert _lean_image.agrees(adapter, _lean_image.LeanPreprocess(steps))
    # Off by one pixel, or by one interpolation, is caught.
    shifted = dict(steps, crop=[steps["crop"][0] + 1, steps["crop"][1]])
    assert not _lean_image.agrees(adapter, _lean_image.LeanPreprocess(shifted))
    other = "bilinear" if steps["interpolation"] != "bilinear" else "bicubic"
    assert not _lean_image.agrees(
        adapter, _lean_image.LeanPreprocess(dict(steps, interpolation=other))
    )


@pytest.mark.parametrize(
    "config",
    [
        {"input_size": (3, 48, 40)},  # non-square "center": timm's ResizeKeepRatio
        {"input_size": (3, 48, 48), "crop_mode": "border"},
    ],
)
def test_transforms_the_numpy_steps_do_not_know_are_refused(config):
    import timm.data

    transform = timm.data.create_transform(
        **{"interpolation": "bicubic", "crop_pct": 0.9, **config}, is_training=False
    )
    assert _lean_image.preprocess_steps(transform) is None


@pytest.mark.usefixtures("exported")
def test_a_record_with_a_broken_preprocessing_is_not_started(tiny_image_weights, tmp_path):
    _image(tiny_image_weights, backend="onnx").fit()
    (record_file,) = _records(tmp_path)
    record = json.loads(record_file.read_text())
    record["preprocess"]["interpolation"] = "magic"
    record_file.write_text(json.dumps(record))
    new_process()
    assert _lean_image.start_image(_image(tiny_image_weights, backend="onnx")) is None


@pytest.mark.usefixtures("exported")
def test_a_lean_start_fits_its_reduction(tiny_image_weights, varied_images):
    expected = _image(tiny_image_weights, backend="onnx", n_components=3).fit_transform(
        varied_images
    )
    new_process()
    lean = _image(tiny_image_weights, backend="onnx", n_components=3)
    got = lean.fit_transform(varied_images)
    assert _lean.is_lean(lean._network)
    assert got.shape == (len(varied_images), 3)
    np.testing.assert_allclose(np.abs(got), np.abs(expected), atol=1e-4)


@pytest.mark.skipif(not optional_available("openvino"), reason="openvino is not installed")
@pytest.mark.usefixtures("exported")
def test_openvino_auto_probes_bfloat16_on_numpy_batches(tiny_image_weights, monkeypatch):
    from sktransfer import _precision

    monkeypatch.delenv("SKTRANSFER_BFLOAT16")
    monkeypatch.setattr(_precision, "native_bfloat16", lambda device: (True, "native (mocked)"))
    first = _image(tiny_image_weights, backend="openvino").fit()
    new_process()
    lean = _image(tiny_image_weights, backend="openvino").fit()
    assert _lean.is_lean(lean._network)
    # The probe ran the runtime on the adapter's probe batch (numpy, no torch).
    assert lean.precision_ == first.precision_
    assert lean.precision_.reason.split("(")[0] == first.precision_.reason.split("(")[0]


@pytest.mark.usefixtures("exported")
def test_a_record_already_there_is_neither_checked_nor_written_again(
    tiny_image_weights, tmp_path, monkeypatch
):
    _image(tiny_image_weights, backend="onnx").fit()
    (record_file,) = _records(tmp_path)
    stamp = record_file.stat()

    def no_check(*args, **kwargs):
        raise AssertionError("checked again")

    monkeypatch.setattr(_lean_image, "agrees", no_check)
    # Equal encoders of this process take the torch path (the failed start is
    # shared): the record this process wrote is kept.
    assert not _lean.is_lean(_image(tiny_image_weights, backend="onnx").fit()._network)
    monkeypatch.setattr(_lean_image, "_WRITTEN", {})  # another process: the file is read
    assert not _lean.is_lean(_image(tiny_image_weights, backend="onnx").fit()._network)
    assert (record_file.stat().st_ino, record_file.stat().st_mtime_ns) == (
        stamp.st_ino,
        stamp.st_mtime_ns,
    )
    # A record that differs (here: another export digest) is checked and written again.
    record = json.loads(record_file.read_text())
    record["export_sha256"] = "0" * 64
    record_file.write_text(json.dumps(record, indent=1))
    with pytest.raises(AssertionError, match="checked again"):
        _image(tiny_image_weights, backend="onnx").fit()


@pytest.mark.real_model
def test_the_packaged_default_model_starts_lean_offline(tmp_path, monkeypatch, varied_images):
    import huggingface_hub.constants

    from sktransfer._hub import packaged_image_checkpoint

    if packaged_image_checkpoint("tf_efficientnet_lite0") is None:
        pytest.skip("the packaged checkpoint (sktransfer[offline]) is not installed")
    empty = tmp_path / "empty-hf-cache"
    empty.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(empty))
    params = {"image_size": 96, "cache": None, "progress": False, "backend": "onnx"}
    first = sktransfer.ImageEncoder("tf_efficientnet_lite0", **params).fit()
    assert first.model_source_ == "package"
    expected = first.transform(varied_images)
    new_process()
    lean = sktransfer.ImageEncoder("tf_efficientnet_lite0", **params).fit()
    assert _lean.is_lean(lean._network)
    assert (lean.model_source_, lean.model_reference_) == ("package", first.model_reference_)
    assert lean.model_fingerprint_ == first.model_fingerprint_
    np.testing.assert_allclose(lean.transform(varied_images), expected, rtol=0, atol=1e-5)
    # With the Hub allowed, the torch path asks it first: where it answers, the
    # torch path downloads (no start); where it cannot be reached, the package.
    from sktransfer import _hub

    monkeypatch.delenv("HF_HUB_OFFLINE")
    for status, starts in (("ok", False), ("unreachable", True), ("missing", True)):
        monkeypatch.setattr(_hub, "_hub_status", lambda repo, revision=None, s=status: (s, ""))
        new_process()
        encoder = sktransfer.ImageEncoder("tf_efficientnet_lite0", **params)
        assert (_lean_image.start_image(encoder) is not None) is starts, status
