"""Start records: an ONNX/OpenVINO TextEncoder started without importing torch.

The first ``fit`` exports and checks the model, then writes a start record; a
later ``fit`` starts from it (``sktransfer._lean``). Every comparison runs with
``cache=None`` against an encoder that took the torch path.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import sktransfer  # noqa: E402
from sktransfer import _lean, _onnx  # noqa: E402
from sktransfer._base import LOADED_NETWORKS  # noqa: E402
from sktransfer._optional import optional_available  # noqa: E402
from sktransfer.exceptions import TruncationWarning  # noqa: E402
from tests.onnx_helpers import RUNTIMES, new_process  # noqa: E402

TEXTS = [
    "a great movie",
    "i love this film and the book was very good fun",
    "bad",
    "  The CAT sat on the mat, and it was not boring at all! i like it  ",
    "",
    "superb café 😀",
    " ".join(["i love this film and the book was very good fun"] * 12),  # past 48 tokens
]


def _encoder(model, **params):
    params = {"cache": None, "progress": False, "batch_size": 3, **params}
    return sktransfer.TextEncoder(model, **params)


@pytest.fixture(scope="module")
def _data_home(tmp_path_factory):
    return tmp_path_factory.mktemp("lean-data")


@pytest.fixture(autouse=True)
def _fresh(_data_home, monkeypatch):
    """A data home whose exports the module's tests share (each export is made once),
    but no start record survives a test."""
    import shutil

    monkeypatch.setenv("SKTRANSFER_DATA", str(_data_home))
    shutil.rmtree(_data_home / "onnx" / "start", ignore_errors=True)
    new_process()
    yield
    new_process()


def _records():
    folder = Path(os.environ["SKTRANSFER_DATA"]) / "onnx" / "start"
    return sorted(p for p in folder.glob("*.json") if not p.name.endswith(".tokenizer.json"))


def _fit_twice(model, texts, **params):
    """(the torch-path encoder and its output, the started encoder and its output)."""
    first = _encoder(model, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        expected = first.fit_transform(texts)
        new_process()
        second = _encoder(model, **params)
        got = second.fit_transform(texts)
    return first, expected, second, got


@pytest.mark.parametrize("backend", RUNTIMES)
def test_a_second_fit_starts_from_the_record_and_computes_the_same(tiny_text_model, backend):
    first, expected, second, got = _fit_twice(tiny_text_model, TEXTS, backend=backend)
    assert not _lean.is_lean(first._network)
    assert _lean.is_lean(second._network)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert np.linalg.norm(got[0] - got[1]) > 1e-3  # not a constant output
    # The same fingerprint: the two paths share cached vectors.
    assert second.model_fingerprint_ == first.model_fingerprint_
    assert (second.model_source_, second.model_reference_) == (
        first.model_source_,
        first.model_reference_,
    )
    assert second.precision_ == first.precision_ and second.embedding_dim_ == 32
    # And both are the torch model's numbers.
    reference = _encoder(tiny_text_model, precision="float32").fit_transform(TEXTS[:6])
    np.testing.assert_allclose(got[:6], reference, atol=1e-5)


def test_the_record_is_written_once_after_the_export_passed(tiny_text_model, tmp_path):
    _encoder(tiny_text_model, backend="onnx").fit()
    (record,) = _records()
    content = json.loads(record.read_text())
    assert content["kind"] == "text" and content["max_seq_length"] == 48
    assert content["identity"].startswith("sha256:")
    assert (record.parent.parent / content["export"] / "model.onnx").is_file()
    assert record.with_name(record.stem + ".tokenizer.json").is_file()
    # The torch backend writes none.
    LOADED_NETWORKS.clear()
    _encoder(tiny_text_model, backend="torch").fit()
    assert len(_records()) == 1


@pytest.mark.parametrize(
    "params",
    [
        {"long_texts": "chunk", "chunk_overlap": 0.5},
        {"prompt": "query: "},
        {"normalize": True},
        {"max_length": 12},
        {"n_components": 3, "random_state": 0},
    ],
    ids=lambda p: next(iter(p)),
)
def test_started_encoders_follow_every_output_parameter(tiny_text_model, params):
    first, expected, second, got = _fit_twice(tiny_text_model, TEXTS, backend="onnx", **params)
    assert _lean.is_lean(second._network)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    if params.get("normalize"):
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)


def test_other_parameters_do_not_start_from_another_encoders_record(tiny_text_model):
    _encoder(tiny_text_model, backend="onnx").fit()
    new_process()
    other = _encoder(tiny_text_model, backend="onnx", prompt="passage: ").fit()
    assert not _lean.is_lean(other._network)  # its own export and record were made


def test_a_started_encoder_warns_about_truncation_and_chunks(tiny_text_model):
    _encoder(tiny_text_model, backend="onnx").fit()
    new_process()
    encoder = _encoder(tiny_text_model, backend="onnx").fit()
    assert _lean.is_lean(encoder._network)
    with pytest.warns(TruncationWarning, match=r"position 6\b.*reads up to 64 tokens"):
        encoder.transform(TEXTS)


def test_a_fresh_process_starts_without_torch(tiny_text_model, tmp_path):
    expected = _encoder(tiny_text_model, backend="onnx").fit_transform(TEXTS[:6])
    child = (
        "import sys, json, numpy as np\n"
        "import sktransfer\n"
        f"enc = sktransfer.TextEncoder({tiny_text_model!r}, backend='onnx', cache=None,"
        " progress=False)\n"
        f"out = enc.fit_transform({TEXTS[:6]!r})\n"
        "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers')"
        " if m in sys.modules]\n"
        "print(json.dumps({'heavy': heavy, 'out': out.tolist()}))\n"
    )
    env = {**os.environ, "SKTRANSFER_DATA": os.environ["SKTRANSFER_DATA"]}
    done = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, env=env, check=True
    )
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["heavy"] == []
    np.testing.assert_allclose(np.asarray(answer["out"]), expected, atol=1e-6)


def test_a_damaged_export_is_never_run_from_the_record(tiny_text_model, tmp_path):
    first = _encoder(tiny_text_model, backend="onnx")
    expected = first.fit_transform(TEXTS[:3])
    export = first._runner().source
    new_process()
    # Same size, other bytes: only the hash can tell.
    data = bytearray(open(export, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(export, "wb").write(bytes(data))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "moved aside ... exported again"
        again = _encoder(tiny_text_model, backend="onnx").fit()
    assert not _lean.is_lean(again._network)
    np.testing.assert_allclose(again.transform(TEXTS[:3]), expected, atol=1e-6)
    # The torch path exported again and wrote a new record: the next start uses it.
    new_process()
    third = _encoder(tiny_text_model, backend="onnx").fit()
    assert _lean.is_lean(third._network)
    np.testing.assert_allclose(third.transform(TEXTS[:3]), expected, atol=1e-6)


def test_new_weights_in_the_same_folder_miss_the_record(tiny_text_model, tmp_path):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_text_model, folder)
    _encoder(str(folder), backend="onnx").fit()
    new_process()
    # Rewritten in place: the identity (content hash) changes.
    (weights,) = [p for p in folder.rglob("model.safetensors")]
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(weights))
    name = next(n for n in tensors if n.endswith("word_embeddings.weight"))
    tensors[name] = tensors[name] + 0.5
    save_file(tensors, str(weights), metadata={"format": "pt"})
    again = _encoder(str(folder), backend="onnx").fit()
    assert not _lean.is_lean(again._network)
    expected = _encoder(str(folder), precision="float32").fit_transform(TEXTS[:3])
    np.testing.assert_allclose(again.transform(TEXTS[:3]), expected, atol=1e-5)


def test_no_record_when_the_stand_in_tokenizer_disagrees(tiny_text_model, tmp_path, monkeypatch):
    real = _lean.LeanText.preprocess

    def one_token_short(self, texts, prompt=None):
        out = real(self, texts, prompt)
        out["input_ids"] = out["input_ids"].copy()
        out["input_ids"][:, -1] = 0
        return out

    monkeypatch.setattr(_lean.LeanText, "preprocess", one_token_short)
    _encoder(tiny_text_model, backend="onnx").fit()
    assert _records() == []
    new_process()
    again = _encoder(tiny_text_model, backend="onnx").fit()
    assert not _lean.is_lean(again._network)


@pytest.mark.parametrize("change", ["max_seq_length", "lowercase", "pad_id"])
def test_the_agreement_check_catches_a_wrong_stand_in(tiny_text_model, change):
    encoder = _encoder(tiny_text_model, backend="onnx").fit()
    st = encoder.model_
    record = json.loads(_records_of(encoder)[0].read_text())
    spec = st.tokenizer.backend_tokenizer.to_str()
    assert _lean.agrees(encoder, st, _lean.LeanText(record, spec))
    if change == "max_seq_length":
        record["max_seq_length"] -= 1
    elif change == "lowercase":  # a tokenizer that keeps case
        spec = json.dumps({**json.loads(spec), "normalizer": None})
    else:
        record["tokenizer"]["pad_id"] = 1
    assert not _lean.agrees(encoder, st, _lean.LeanText(record, spec))


def _records_of(encoder):
    folder = _onnx.export_folder(encoder.cache) / "start"
    return sorted(p for p in folder.glob("*.json") if not p.name.endswith(".tokenizer.json"))


def test_model_loads_the_real_model_on_demand(tiny_text_model):
    _encoder(tiny_text_model, backend="onnx").fit()
    new_process()
    encoder = _encoder(tiny_text_model, backend="onnx").fit()
    assert _lean.is_lean(encoder._network)
    model = encoder.model_
    assert type(model).__name__ == "SentenceTransformer"
    np.testing.assert_allclose(
        model.encode(["a great movie"]), encoder.transform(["a great movie"]), atol=1e-5
    )


def test_a_started_encoder_pickles_and_starts_again(tiny_text_model):
    _encoder(tiny_text_model, backend="onnx").fit()
    new_process()
    encoder = _encoder(tiny_text_model, backend="onnx").fit()
    expected = encoder.transform(TEXTS[:3])
    copy = pickle.loads(pickle.dumps(encoder))
    new_process()
    np.testing.assert_allclose(copy.transform(TEXTS[:3]), expected, atol=1e-6)
    assert _lean.is_lean(copy._network)


def test_clones_share_one_start(tiny_text_model, monkeypatch):
    _encoder(tiny_text_model, backend="onnx").fit()
    new_process()
    hashed = []
    real = _lean.export_digest
    monkeypatch.setattr(_lean, "export_digest", lambda path: hashed.append(path) or real(path))
    for _ in range(3):
        assert _lean.is_lean(_encoder(tiny_text_model, backend="onnx").fit()._network)
    assert len(hashed) == 1


def test_n_threads_reaches_the_runtime(tiny_text_model):
    _encoder(tiny_text_model, backend="onnx").fit()
    new_process()
    encoder = _encoder(tiny_text_model, backend="onnx", n_threads=1).fit()
    assert _lean.is_lean(encoder._network)
    assert encoder._runner().session.get_session_options().intra_op_num_threads == 1


def test_only_local_files_resolve_without_torch(tiny_text_model, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert _lean.text_reference(tiny_text_model, None)[0] == "local"
    assert _lean.text_reference(str(tmp_path / "missing" / "model"), None) is None
    assert _lean.text_reference("nobody/not-a-cached-model", None) is None


def test_an_empty_runtime_error_still_names_the_way_out(tiny_text_model, tmp_path, monkeypatch):
    # The message of an error without text used to fail with an IndexError.
    from sktransfer.exceptions import BackendError

    def silent(self, batch):
        raise RuntimeError()

    monkeypatch.setenv("SKTRANSFER_DATA", str(tmp_path))  # the module's exports stay usable
    monkeypatch.setattr(_onnx.OnnxRunner, "numpy", silent)
    with pytest.raises(BackendError, match=r"RuntimeError: no message\). Use backend='torch'"):
        _encoder(tiny_text_model, backend="onnx").fit()


def test_cpu_capabilities_come_from_the_kernels_list(monkeypatch):
    from sktransfer import _precision

    monkeypatch.setattr(_precision, "_linux_cpu_flags", lambda: frozenset({"avx2", "amx_bf16"}))
    assert _precision.cpu_capabilities() == {
        "avx2": True,
        "avx512_bf16": False,
        "amx_bf16": True,
    }
    assert _precision.native_bfloat16("cpu") == (False, "SKTRANSFER_BFLOAT16=0 in the environment")
    monkeypatch.delenv("SKTRANSFER_BFLOAT16")
    assert _precision.native_bfloat16("cpu") == (True, "the CPU has AMX")


def test_the_command_line_starts_without_torch(tiny_text_model, tmp_path):
    import pandas as pd

    table = tmp_path / "in.csv"
    pd.DataFrame({"text": TEXTS[:4]}).to_csv(table, index=False)
    env = {**os.environ, "SKTRANSFER_DATA": os.environ["SKTRANSFER_DATA"]}
    child = (
        "import runpy, sys\n"
        "sys.argv = ['sktransfer', 'embed', {table!r}, '-o', {out!r}, '--column', 'text',"
        f" '--model', {tiny_text_model!r}, '--backend', 'onnx', '--progress', 'off']\n"
        "try:\n"
        "    runpy.run_module('sktransfer', run_name='__main__')\n"
        "except SystemExit as done:\n"
        "    assert not done.code, done.code\n"
        "print('TORCH', 'torch' in sys.modules)\n"
    )
    outputs = []
    for run in ("first", "second"):
        out = tmp_path / f"{run}.parquet"
        done = subprocess.run(
            [sys.executable, "-c", child.format(table=str(table), out=str(out))],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        outputs.append((done.stdout.strip().splitlines()[-1], pd.read_parquet(out)))
    assert outputs[0][0] == "TORCH True"  # the first run exports
    assert outputs[1][0] == "TORCH False"
    first, second = (np.stack(frame.iloc[:, -1].to_numpy()) for _, frame in outputs)
    np.testing.assert_allclose(second, first, atol=1e-6)


@pytest.mark.skipif(not optional_available("openvino"), reason="openvino is not installed")
def test_a_started_openvino_encoder_runs_the_bfloat16_probe(tiny_text_model, monkeypatch):
    from sktransfer import _precision

    _encoder(tiny_text_model, backend="openvino").fit()
    new_process()
    monkeypatch.setattr(_precision, "native_bfloat16", lambda device: (True, "mocked"))
    encoder = _encoder(tiny_text_model, backend="openvino").fit()
    assert _lean.is_lean(encoder._network)
    assert encoder.precision_.reason.startswith("auto: mocked")
    assert "probe batch (mean cosine" in encoder.precision_.reason
    reference = _encoder(tiny_text_model, precision="float32").fit_transform(TEXTS[:6])
    got = encoder.transform(TEXTS[:6])
    cosine = (
        (got * reference).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(reference, axis=1)
    )
    assert cosine.min() > 0.99


@pytest.mark.parametrize(
    ("offline", "hub", "expected"),
    [
        (True, "ok", "package"),
        (False, "unreachable", "package"),
        (False, "missing", "package"),
        (False, "ok", None),  # the torch path downloads it
    ],
)
def test_a_packaged_name_resolves_as_the_torch_path_does(
    tiny_text_model, monkeypatch, offline, hub, expected
):
    from sktransfer import _hub

    monkeypatch.setattr(_hub, "hf_snapshot_folder", lambda name, revision=None: None)
    monkeypatch.setattr(_hub, "_hub_status", lambda name, revision=None: (hub, ""))
    monkeypatch.setattr(_hub, "packaged_text_model_dir", lambda name: tiny_text_model)
    if offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    found = _lean.text_reference("all-MiniLM-L6-v2", None)
    assert found == (None if expected is None else ("package", tiny_text_model))
    assert _lean.text_reference("someone/other-model", None) is None


def test_a_tokenizer_that_raises_on_the_check_means_no_record(
    tiny_text_model, tmp_path, monkeypatch
):
    def raises(self, *args, **kwargs):
        raise RuntimeError("this tokenizer cannot do that")

    monkeypatch.setattr(_lean.LeanText, "preprocess", raises)
    encoder = _encoder(tiny_text_model, backend="onnx").fit()  # fit itself is unaffected
    assert _records() == []
    assert encoder.transform(["a great movie"]).shape == (1, 32)
