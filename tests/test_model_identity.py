"""The model fingerprint follows the weights: no stale vector after a model update.

A Hugging Face cache is built in a temp dir (``models--org--name/snapshots/<commit>``
+ ``refs/main``); moving ``refs/main`` to a snapshot with other weights, or
rewriting a local weights file in place with its size and mtime preserved, must
give fresh vectors from a disk cache that holds the old ones.
"""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from sktransfer import ImageEncoder, TextEncoder
from sktransfer._base import LOADED_NETWORKS
from tests.conftest import image_samples, text_samples

COMMIT_A = "a" * 40
COMMIT_B = "b" * 40


def _new_process():
    """Forget what this process loaded or hashed, as a new process would."""
    from sktransfer import cache as _cache

    LOADED_NETWORKS.clear()
    getattr(_cache, "_file_hashes", {}).clear()


def _perturb_safetensors(path: Path, scale: float = 1.5) -> None:
    """Rewrite a safetensors file in place with other values: same size, same mtime."""
    import json

    before = path.stat()
    data = bytearray(path.read_bytes())
    header_len = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_len])
    base = 8 + header_len
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] != "F32":
            continue
        start, end = (base + offset for offset in info["data_offsets"])
        values = np.frombuffer(bytes(data[start:end]), dtype="<f4") * scale + 0.01
        data[start:end] = values.astype("<f4").tobytes()
    with open(path, "r+b") as fh:  # in place: same inode, same size
        fh.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache in a temp dir, used by every loader."""
    import huggingface_hub.constants

    hub = tmp_path / "hf-hub"
    hub.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub))
    return hub


def _add_snapshot(hub: Path, repo_id: str, commit: str, source: Path) -> Path:
    repo = hub / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    if source.is_dir():
        shutil.copytree(source, snapshot)
    else:
        snapshot.mkdir(parents=True)
        shutil.copy(source, snapshot / "model.safetensors")
    return snapshot


def _point_main(hub: Path, repo_id: str, commit: str) -> None:
    refs = hub / f"models--{repo_id.replace('/', '--')}" / "refs"
    refs.mkdir(parents=True, exist_ok=True)
    (refs / "main").write_text(commit)


# ------------------------------------------------------------------- text
@pytest.fixture
def text_cache_two_snapshots(hf_cache, tiny_text_model):
    repo_id = "org/tiny-text"
    _add_snapshot(hf_cache, repo_id, COMMIT_A, Path(tiny_text_model))
    second = _add_snapshot(hf_cache, repo_id, COMMIT_B, Path(tiny_text_model))
    _perturb_safetensors(second / "model.safetensors")
    _point_main(hf_cache, repo_id, COMMIT_A)
    return hf_cache, repo_id


def test_text_hf_cache_ref_moved_gives_fresh_vectors(text_cache_two_snapshots, tmp_path):
    hub, repo_id = text_cache_two_snapshots
    X, _ = text_samples(8)
    db = tmp_path / "db"
    first = TextEncoder(repo_id, cache=db, progress=False).fit()
    assert first.model_source_ == "hf-cache"
    old = first.transform(X)

    _point_main(hub, repo_id, COMMIT_B)
    _new_process()
    second = TextEncoder(repo_id, cache=db, progress=False).fit()
    served = second.transform(X)
    _new_process()
    fresh = TextEncoder(repo_id, cache=None, progress=False).fit().transform(X)

    assert second.model_fingerprint_ != first.model_fingerprint_
    assert not np.allclose(old, fresh)
    np.testing.assert_allclose(served, fresh, rtol=1e-5, atol=1e-6)


def test_text_pickled_encoder_reloads_new_snapshot_with_a_warning(
    text_cache_two_snapshots, tmp_path
):
    hub, repo_id = text_cache_two_snapshots
    X, _ = text_samples(8)
    db = tmp_path / "db"
    encoder = TextEncoder(repo_id, cache=db, progress=False).fit()
    old = encoder.transform(X)
    blob = pickle.dumps(encoder)

    _point_main(hub, repo_id, COMMIT_B)
    _new_process()
    restored = pickle.loads(blob)
    with pytest.warns(UserWarning, match="features may differ"):
        served = restored.transform(X)
    _new_process()
    fresh = TextEncoder(repo_id, cache=None, progress=False).fit().transform(X)
    assert restored.model_fingerprint_ != encoder.model_fingerprint_
    assert not np.allclose(old, fresh)
    np.testing.assert_allclose(served, fresh, rtol=1e-5, atol=1e-6)


def test_same_weights_as_hub_id_and_folder_have_one_fingerprint(hf_cache, tiny_text_model):
    repo_id = "org/tiny-text"
    _add_snapshot(hf_cache, repo_id, COMMIT_A, Path(tiny_text_model))
    _point_main(hf_cache, repo_id, COMMIT_A)
    by_id = TextEncoder(repo_id, progress=False).fit()
    by_path = TextEncoder(tiny_text_model, progress=False).fit()
    assert (by_id.model_source_, by_path.model_source_) == ("hf-cache", "local")
    assert by_id.model_fingerprint_ == by_path.model_fingerprint_


@pytest.mark.parametrize("new_process", [False, True])
def test_text_folder_rewritten_in_place_gives_fresh_vectors(tiny_text_model, tmp_path, new_process):
    folder = tmp_path / "model"
    shutil.copytree(tiny_text_model, folder)
    X, _ = text_samples(8)
    db = tmp_path / "db"
    first = TextEncoder(str(folder), cache=db, progress=False).fit()
    old = first.transform(X)

    _perturb_safetensors(folder / "model.safetensors")
    if new_process:
        _new_process()
    second = TextEncoder(str(folder), cache=db, progress=False).fit()
    served = second.transform(X)
    _new_process()
    fresh = TextEncoder(str(folder), cache=None, progress=False).fit().transform(X)

    assert not np.allclose(old, fresh)
    assert second.model_fingerprint_ != first.model_fingerprint_
    np.testing.assert_allclose(served, fresh, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ image
@pytest.mark.parametrize("new_process", [False, True])
def test_image_weights_file_rewritten_in_place_gives_fresh_vectors(
    tiny_image_weights, tmp_path, new_process
):
    weights = tmp_path / "w.safetensors"
    shutil.copy(tiny_image_weights, weights)
    X, _ = image_samples(6)
    db = tmp_path / "db"
    params = {"model": "test_efficientnet", "weights": str(weights), "progress": False}
    first = ImageEncoder(**params, cache=db).fit()
    old = first.transform(X)

    _perturb_safetensors(weights)
    if new_process:
        _new_process()
    second = ImageEncoder(**params, cache=db).fit()
    served = second.transform(X)
    _new_process()
    fresh = ImageEncoder(**params, cache=None).fit().transform(X)

    assert not np.allclose(old, fresh)
    assert second.model_fingerprint_ != first.model_fingerprint_
    np.testing.assert_allclose(served, fresh, rtol=1e-5, atol=1e-6)


def test_image_hf_cache_ref_moved_gives_fresh_vectors(hf_cache, tiny_image_weights, tmp_path):
    import timm

    repo_id = timm.models.get_pretrained_cfg("test_efficientnet").hf_hub_id
    _add_snapshot(hf_cache, repo_id, COMMIT_A, Path(tiny_image_weights))
    second_snapshot = _add_snapshot(hf_cache, repo_id, COMMIT_B, Path(tiny_image_weights))
    _perturb_safetensors(second_snapshot / "model.safetensors")
    _point_main(hf_cache, repo_id, COMMIT_A)
    X, _ = image_samples(6)
    db = tmp_path / "db"
    first = ImageEncoder("test_efficientnet", cache=db, progress=False).fit()
    assert first.model_source_ == "hf-cache"
    old = first.transform(X)

    _point_main(hf_cache, repo_id, COMMIT_B)
    _new_process()
    second = ImageEncoder("test_efficientnet", cache=db, progress=False).fit()
    served = second.transform(X)
    _new_process()
    fresh = ImageEncoder("test_efficientnet", cache=None, progress=False).fit().transform(X)

    assert second.model_fingerprint_ != first.model_fingerprint_
    assert not np.allclose(old, fresh)
    np.testing.assert_allclose(served, fresh, rtol=1e-5, atol=1e-6)


def test_weights_file_identity_ignores_its_name(tiny_image_weights, tmp_path):
    copy = tmp_path / "renamed.safetensors"
    shutil.copy(tiny_image_weights, copy)
    a = ImageEncoder("test_efficientnet", weights=tiny_image_weights, progress=False).fit()
    b = ImageEncoder("test_efficientnet", weights=str(copy), progress=False).fit()
    assert a.model_fingerprint_ == b.model_fingerprint_


def test_random_weights_are_not_confused_with_a_file_of_that_name(tmp_path, monkeypatch):
    base = ImageEncoder("test_efficientnet", pretrained=False, progress=False).fit()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "test_efficientnet").write_bytes(b"not weights")
    _new_process()
    other = ImageEncoder("test_efficientnet", pretrained=False, progress=False).fit()
    assert other.model_source_ == "random-init"
    assert other.model_fingerprint_ == base.model_fingerprint_
