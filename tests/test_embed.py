"""``sktransfer embed``: schema, streaming in chunks, resuming, bad rows, images, a Dask cluster."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sktransfer import ImageEncoder, TextEncoder
from sktransfer._optional import optional_available
from sktransfer.cli import _embed, main
from tests.conftest import image_samples, text_samples


def _texts(n):
    texts, _ = text_samples(n)
    return [f"{t} {i}" for i, t in enumerate(texts)]  # distinct


def _embed_args(model, inp, out, *extra):
    return [
        "embed",
        str(inp),
        "-o",
        str(out),
        "--model",
        model,
        "--progress",
        "off",
        "--n-threads",
        "1",
        *extra,
    ]


def _matrix(table):
    """The embedding column as a 2-D array (rows with a null embedding: NaN)."""
    column = table.column("embedding").combine_chunks()
    dim = column.type.list_size
    return np.asarray(
        [np.full(dim, np.nan) if v is None else v for v in column.to_pylist()], dtype=np.float32
    )


def _expected(model, texts):
    return TextEncoder(model, progress=False, cache=None).fit().transform(texts)


def assert_same_rows(got, expected):
    # Chunks batch (and pad) the texts differently from one call: equal to float rounding.
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.fixture
def csv_file(tmp_path):
    texts = _texts(23)
    path = tmp_path / "reviews.csv"
    pd.DataFrame({"id": range(23), "review": texts}).to_csv(path, index=False)
    return path, texts


def test_csv_to_parquet_schema_rows_and_embeddings(tiny_text_model, csv_file, tmp_path):
    path, texts = csv_file
    out = tmp_path / "emb.parquet"
    code = main(_embed_args(tiny_text_model, path, out, "--column", "review", "--chunk-size", "5"))
    assert code == 0
    table = pq.read_table(out)
    assert table.schema.field("row").type == pa.int64()
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 32)
    assert table.column_names == ["row", "embedding"]
    assert table.column("row").to_pylist() == list(range(23))
    assert pq.ParquetFile(out).metadata.num_row_groups == 5  # one per chunk
    assert_same_rows(_matrix(table), _expected(tiny_text_model, texts))
    info = json.loads(table.schema.metadata[b"sktransfer.embed"])
    assert info["dim"] == 32 and info["manifest"]["column"] == "review"
    assert not (tmp_path / "emb.parquet.partial").exists()
    # pandas reads it as one array per row
    frame = pd.read_parquet(out)
    assert_same_rows(np.stack(frame["embedding"]), _expected(tiny_text_model, texts))


def test_parquet_input_with_limit(tiny_text_model, tmp_path):
    texts = _texts(12)
    path = tmp_path / "t.parquet"
    pd.DataFrame({"text": texts}).to_parquet(path)  # one column: --column not needed
    out = tmp_path / "o.parquet"
    assert main(_embed_args(tiny_text_model, path, out, "--limit", "7", "--chunk-size", "3")) == 0
    table = pq.read_table(out)
    assert table.column("row").to_pylist() == list(range(7))
    assert_same_rows(_matrix(table), _expected(tiny_text_model, texts[:7]))


def test_a_missing_or_ambiguous_column_is_named(tiny_text_model, csv_file, tmp_path, capsys):
    path, _ = csv_file
    out = tmp_path / "o.parquet"
    assert main(_embed_args(tiny_text_model, path, out)) == 1
    assert "has 2 columns ['id', 'review']; name the one" in capsys.readouterr().err
    assert main(_embed_args(tiny_text_model, path, out, "--column", "text")) == 1
    assert "has no column 'text'; its columns are ['id', 'review']" in capsys.readouterr().err


def test_memory_is_bounded_by_the_chunk(tiny_text_model, csv_file, tmp_path, monkeypatch):
    path, _ = csv_file
    sizes = []
    transform = TextEncoder.transform

    def spy(self, X):
        sizes.append(len(X))
        return transform(self, X)

    monkeypatch.setattr(TextEncoder, "transform", spy)
    out = tmp_path / "o.parquet"
    args = _embed_args(tiny_text_model, path, out, "--column", "review", "--chunk-size", "4")
    assert main(args) == 0
    assert sizes == [4, 4, 4, 4, 4, 3]  # never more than one chunk at a time


class _Stop(KeyboardInterrupt):
    pass


def test_resume_after_an_interruption_has_every_row_once(
    tiny_text_model, csv_file, tmp_path, monkeypatch, capsys
):
    path, texts = csv_file
    out = tmp_path / "emb.parquet"
    args = _embed_args(tiny_text_model, path, out, "--column", "review", "--chunk-size", "4")
    write = _embed._write_part
    calls = []

    def stop_after_two(*a, **k):
        if len(calls) == 2:
            raise _Stop  # as if Ctrl-C came while the third chunk was written
        calls.append(a[1])
        return write(*a, **k)

    monkeypatch.setattr(_embed, "_write_part", stop_after_two)
    assert main(args) == 130
    assert "run the same command again to continue" in capsys.readouterr().err
    partial = tmp_path / "emb.parquet.partial"
    assert sorted(p.name for p in partial.glob("part-*.parquet")) == [
        "part-00000000.parquet",
        "part-00000001.parquet",
    ]
    assert not out.exists()
    # a crash in the middle of a write leaves a temporary file behind: never read
    (partial / "part-00000002.parquet.tmp999").write_bytes(b"half a file")

    calls.clear()
    monkeypatch.setattr(_embed, "_write_part", lambda *a, **k: (calls.append(a[1]), write(*a, **k)))
    assert main(args) == 0
    assert calls == [2, 3, 4, 5]  # only the missing chunks were encoded
    table = pq.read_table(out)
    assert table.column("row").to_pylist() == list(range(23))  # no gap, no duplicate
    assert_same_rows(_matrix(table), _expected(tiny_text_model, texts))
    assert not partial.exists()

    assert main(args) == 0  # a third run has nothing to do
    assert "is complete; nothing to do" in capsys.readouterr().err


def test_resume_refuses_other_settings(tiny_text_model, csv_file, tmp_path, monkeypatch, capsys):
    path, _ = csv_file
    out = tmp_path / "emb.parquet"
    args = _embed_args(tiny_text_model, path, out, "--column", "review", "--chunk-size", "4")

    def stop(*a, **k):
        raise _Stop

    monkeypatch.setattr(_embed, "_write_part", stop)
    assert main(args) == 130
    monkeypatch.undo()
    assert main(args[:-1] + ["5"]) == 1
    err = capsys.readouterr().err
    assert "an earlier run with other settings or another input (changed: chunk_size)" in err
    assert main(args) == 0


def _bad_csv(tmp_path):
    texts = _texts(10)
    texts[3] = ""  # empty field: read as missing
    texts[7] = "   "
    path = tmp_path / "bad.csv"
    pd.DataFrame({"review": texts}).to_csv(path, index=False)
    return path, texts


def test_on_error_raise_names_the_rows(tiny_text_model, tmp_path, capsys):
    path, _ = _bad_csv(tmp_path)
    out = tmp_path / "o.parquet"
    assert main(_embed_args(tiny_text_model, path, out)) == 1
    err = capsys.readouterr().err
    assert "2 bad row(s) in this chunk (row 3: missing text; row 7: empty text)" in err
    assert "--on-error skip" in err
    assert not out.exists()


def test_on_error_skip_leaves_them_out_and_lists_them(tiny_text_model, tmp_path, capsys):
    path, texts = _bad_csv(tmp_path)
    out = tmp_path / "o.parquet"
    assert main(_embed_args(tiny_text_model, path, out, "--on-error", "skip")) == 0
    table = pq.read_table(out)
    good = [0, 1, 2, 4, 5, 6, 8, 9]
    assert table.column("row").to_pylist() == good
    assert_same_rows(_matrix(table), _expected(tiny_text_model, [texts[i] for i in good]))
    side = pd.read_csv(tmp_path / "o.skipped.csv")
    assert side.to_dict("list") == {"row": [3, 7], "reason": ["missing text", "empty text"]}
    assert "2 bad row(s) left out: row 3: missing text; row 7: empty text" in (
        capsys.readouterr().err
    )


def test_on_error_empty_keeps_them_with_a_null_embedding(tiny_text_model, tmp_path):
    path, texts = _bad_csv(tmp_path)
    out = tmp_path / "o.parquet"
    code = main(_embed_args(tiny_text_model, path, out, "--on-error", "empty", "--chunk-size", "4"))
    assert code == 0
    table = pq.read_table(out)
    assert table.column("row").to_pylist() == list(range(10))
    embedding = table.column("embedding")
    assert [i for i, v in enumerate(embedding.to_pylist()) if v is None] == [3, 7]
    good = [0, 1, 2, 4, 5, 6, 8, 9]
    got = _matrix(table)[good]
    assert_same_rows(got, _expected(tiny_text_model, [texts[i] for i in good]))


def _image_args(weights, inp, out, *extra):
    return [
        "embed",
        str(inp),
        "-o",
        str(out),
        "--model",
        "test_efficientnet",
        "--weights",
        weights,
        "--image-size",
        "32",
        "--progress",
        "off",
        *extra,
    ]


def test_a_folder_of_images_with_an_unreadable_one(tiny_image_weights, tmp_path):
    from PIL import Image

    images, _ = image_samples(5, size=32)
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    names = ["a.png", "b.png", "c.png", "sub/d.png", "sub/e.jpg"]
    for name, image in zip(names, images, strict=True):
        Image.fromarray(image).save(folder / name)
    (folder / "broken.png").write_bytes(b"not an image")
    (folder / "notes.txt").write_text("not listed")
    out = tmp_path / "img.parquet"
    code = main(
        _image_args(tiny_image_weights, folder, out, "--on-error", "skip", "--chunk-size", "4")
    )
    assert code == 0
    table = pq.read_table(out)
    assert table.column_names == ["row", "path", "embedding"]
    # sorted: a.png b.png broken.png c.png sub/d.png sub/e.jpg; broken.png is row 2
    assert table.column("row").to_pylist() == [0, 1, 3, 4, 5]
    assert table.column("path").to_pylist() == names
    encoder = ImageEncoder(
        "test_efficientnet", weights=tiny_image_weights, image_size=32, progress=False, cache=None
    ).fit()
    expected = encoder.transform([str(folder / n) for n in names])
    np.testing.assert_allclose(_matrix(table), expected, rtol=1e-5, atol=1e-6)
    side = pd.read_csv(tmp_path / "img.skipped.csv")
    assert side["row"].tolist() == [2]
    assert side["reason"][0].startswith("unreadable image")


def test_a_csv_of_image_paths_relative_to_the_csv(tiny_image_weights, tmp_path):
    from PIL import Image

    images, _ = image_samples(3, size=32)
    for i, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / f"{i}.png")
    listing = tmp_path / "images.csv"
    pd.DataFrame({"file": ["0.png", "1.png", str(tmp_path / "2.png")]}).to_csv(listing, index=False)
    out = tmp_path / "img.parquet"
    assert main(_image_args(tiny_image_weights, listing, out, "--kind", "image")) == 0
    table = pq.read_table(out)
    assert table.column_names == ["row", "embedding"]
    encoder = ImageEncoder(
        "test_efficientnet", weights=tiny_image_weights, image_size=32, progress=False, cache=None
    ).fit()
    np.testing.assert_allclose(_matrix(table), encoder.transform(images), rtol=1e-5, atol=1e-6)


def test_progress_shows_rate_and_time_left(tiny_text_model, csv_file, tmp_path, capsys):
    path, _ = csv_file
    out = tmp_path / "o.parquet"
    args = _embed_args(tiny_text_model, path, out, "--column", "review", "--chunk-size", "8")
    args[args.index("--progress") + 1] = "on"
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "23/23" in err and "row/s" in err and "<" in err  # count, rate, time left


def test_on_a_dask_cluster(tiny_text_model, csv_file, tmp_path):
    import distributed

    path, texts = csv_file
    out = tmp_path / "o.parquet"
    # Threads in this process, on loopback TCP: the same client/scheduler protocol as a
    # real cluster without the seconds that starting worker processes costs.
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=False,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        args = _embed_args(tiny_text_model, path, out, "--column", "review", "--chunk-size", "3")
        assert main([*args, "--scheduler", cluster.scheduler_address]) == 0
    table = pq.read_table(out)
    assert table.column("row").to_pylist() == list(range(23))
    assert_same_rows(_matrix(table), _expected(tiny_text_model, texts))


def test_python_dash_m_runs_embed(tiny_text_model, csv_file, tmp_path):
    import subprocess
    import sys

    path, _ = csv_file
    out = tmp_path / "o.parquet"
    done = subprocess.run(
        [sys.executable, "-m", "sktransfer", *_embed_args(tiny_text_model, path, out)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "name the one to embed with --column" in done.stderr


def test_resume_in_skip_mode_fills_a_gap_and_lists_each_bad_row_once(
    tiny_text_model, tmp_path, monkeypatch
):
    path, texts = _bad_csv(tmp_path)  # rows 3 and 7 are bad
    out = tmp_path / "o.parquet"
    args = _embed_args(tiny_text_model, path, out, "--on-error", "skip", "--chunk-size", "2")
    write = _embed._write_part
    calls = []

    def stop_after_four(*a, **k):
        if len(calls) == 4:
            raise _Stop
        calls.append(a[1])
        return write(*a, **k)

    monkeypatch.setattr(_embed, "_write_part", stop_after_four)
    assert main(args) == 130
    # A gap, as a run on a Dask cluster leaves one (its chunks finish out of order).
    (tmp_path / "o.parquet.partial" / "part-00000001.parquet").unlink()
    calls.clear()
    monkeypatch.setattr(_embed, "_write_part", lambda *a, **k: (calls.append(a[1]), write(*a, **k)))
    assert main(args) == 0
    assert calls == [1, 4]  # the gap and the rest, nothing twice
    good = [0, 1, 2, 4, 5, 6, 8, 9]
    table = pq.read_table(out)
    assert table.column("row").to_pylist() == good
    assert_same_rows(_matrix(table), _expected(tiny_text_model, [texts[i] for i in good]))
    side = pd.read_csv(tmp_path / "o.skipped.csv")
    assert side.to_dict("list") == {"row": [3, 7], "reason": ["missing text", "empty text"]}


def _image_folder(tmp_path, n=5):
    """``n`` images and an unreadable file; sorted, the unreadable one is row 2."""
    from PIL import Image

    images, _ = image_samples(n, size=32)
    folder = tmp_path / "photos"
    folder.mkdir()
    names = [f"{c}.png" for c in "abdefgh"[:n]]
    for name, image in zip(names, images, strict=True):
        Image.fromarray(image).save(folder / name)
    (folder / "c-broken.png").write_bytes(b"not an image")
    return folder, names


def _image_encoder(weights):
    return ImageEncoder(
        "test_efficientnet", weights=weights, image_size=32, progress=False, cache=None
    ).fit()


def test_an_image_folder_resumes_with_every_row_once(tiny_image_weights, tmp_path, monkeypatch):
    folder, names = _image_folder(tmp_path)
    out = tmp_path / "img.parquet"
    args = _image_args(tiny_image_weights, folder, out, "--on-error", "skip", "--chunk-size", "2")
    write = _embed._write_part

    def stop_after_one(*a, **k):
        if a[1] == 1:
            raise _Stop
        return write(*a, **k)

    monkeypatch.setattr(_embed, "_write_part", stop_after_one)
    assert main(args) == 130
    monkeypatch.undo()
    assert main(args) == 0
    table = pq.read_table(out)
    assert table.column("row").to_pylist() == [0, 1, 3, 4, 5]
    assert table.column("path").to_pylist() == names
    expected = _image_encoder(tiny_image_weights).transform([str(folder / n) for n in names])
    np.testing.assert_allclose(_matrix(table), expected, rtol=1e-5, atol=1e-6)
    assert pd.read_csv(tmp_path / "img.skipped.csv")["row"].tolist() == [2]


def test_an_unreadable_image_with_on_error_raise_or_empty(tiny_image_weights, tmp_path, capsys):
    folder, names = _image_folder(tmp_path, n=3)
    out = tmp_path / "img.parquet"
    assert main(_image_args(tiny_image_weights, folder, out)) == 1
    err = capsys.readouterr().err
    assert "1 bad row(s) in this chunk (row 2: unreadable image" in err
    assert not out.exists()

    out = tmp_path / "img-empty.parquet"
    assert main(_image_args(tiny_image_weights, folder, out, "--on-error", "empty")) == 0
    table = pq.read_table(out)
    assert table.column("row").to_pylist() == [0, 1, 2, 3]
    assert table.column("path").to_pylist() == ["a.png", "b.png", "c-broken.png", "d.png"]


@pytest.mark.skipif(
    not optional_available("onnxruntime") or not optional_available("onnxscript"),
    reason="onnxruntime / onnxscript are not installed",
)
def test_backend_onnx_writes_the_torch_embeddings_and_is_part_of_the_job(
    tiny_text_model, csv_file, tmp_path, monkeypatch
):
    monkeypatch.setenv("SKTRANSFER_DATA", str(tmp_path / "data"))
    path, texts = csv_file
    out = tmp_path / "emb.parquet"
    args = _embed_args(tiny_text_model, path, out, "--column", "review", "--backend", "onnx")
    assert main(args) == 0
    table = pq.read_table(out)
    np.testing.assert_allclose(_matrix(table), _expected(tiny_text_model, texts), atol=1e-5)
    info = json.loads(table.schema.metadata[b"sktransfer.embed"])
    assert info["manifest"]["backend"] == "onnx"
    assert list((tmp_path / "data" / "onnx").glob("*/model.onnx"))
