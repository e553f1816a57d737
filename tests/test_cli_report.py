"""``sktransfer report``: a table in, the verdict printed and the report written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sktransfer.cli import main
from tests.conftest import image_samples
from tests.test_report import unreadable_signal


@pytest.fixture
def reviews_csv(tmp_path, monkeypatch):
    monkeypatch.setenv("SKTRANSFER_DATA", str(tmp_path / "data"))
    texts, y = unreadable_signal(n=48)
    path = tmp_path / "reviews.csv"
    frame = pd.DataFrame({"review": texts, "label": np.where(y == 1, "pos", "neg")})
    frame.loc[len(frame)] = [None, "pos"]  # a row without text is left out, and said so
    frame.to_csv(path, index=False)
    return path


def test_report_on_a_csv_prints_the_verdict_and_writes_every_format(
    reviews_csv, tiny_text_model, tmp_path, capsys
):
    outs = [tmp_path / "r.html", tmp_path / "r.md", tmp_path / "r.csv"]
    argv = [str(reviews_csv), "--text", "review", "--target", "label"]
    argv += ["--model", tiny_text_model, "--cv", "3", "--repeats", "2", "--quiet"]
    for out in outs:
        argv += ["--out", str(out)]
    assert main(["report", *argv]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("Verdict: negative transfer: the from-scratch model")
    assert "48 samples (text classification), 2 x stratified 3-fold" in captured.out
    assert "1 rows without 'review' or 'label' left out" in captured.err
    assert "data:image/png;base64," in outs[0].read_text()
    assert outs[1].read_text().startswith("**Verdict:** negative transfer")
    table = pd.read_csv(outs[2], index_col="candidate")
    assert table.loc["st + LR", "verdict"] == "negative transfer"
    # The default cache is a folder in the data folder: a rerun reads it.
    assert (tmp_path / "data" / "embeddings" / "sktransfer-embeddings.sqlite3").is_file()


def test_report_reads_parquet(reviews_csv, tmp_path, capsys):
    path = tmp_path / "reviews.parquet"
    pd.read_csv(reviews_csv).to_parquet(path)
    argv = ["report", str(path), "--text", "review", "--target", "label", "--quiet"]
    argv += ["--cv", "2", "--repeats", "1", "--no-combine"]
    # Only the baselines: no model is needed to check the file is read.
    from sktransfer.report import _candidates

    original = _candidates.pretrained_candidates
    _candidates.pretrained_candidates = lambda *a, **k: []
    try:
        assert main(argv) == 0
    finally:
        _candidates.pretrained_candidates = original
    assert "48 samples" in capsys.readouterr().out


def test_report_on_image_paths_relative_to_the_table(
    tmp_path, tiny_image_weights, monkeypatch, capsys
):
    from PIL import Image

    from sktransfer import ImageEncoder
    from sktransfer.report import _candidates

    images, y = image_samples(n=18, size=24)
    (tmp_path / "img").mkdir()
    names = []
    for i, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / "img" / f"{i}.png")
        names.append(f"img/{i}.png")
    pd.DataFrame({"file": names, "bright": y}).to_csv(tmp_path / "photos.csv", index=False)
    monkeypatch.setattr(
        _candidates,
        "default_encoder",
        lambda modality, cache: ImageEncoder(
            "test_efficientnet", weights=tiny_image_weights, image_size=32, cache=cache
        ),
    )
    argv = ["report", str(tmp_path / "photos.csv"), "--image", "file", "--target", "bright"]
    argv += ["--cv", "3", "--repeats", "1", "--quiet", "--cache", "memory"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "18 samples (image classification)" in out
    assert "pixels 16x16 + LR" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--text", "body", "--target", "label"], "--text 'body': reviews.csv has no such column"),
        (["--text", "review", "--target", "y"], "--target 'y': reviews.csv has no such column"),
        (["--text", "review", "--target", "label", "--out", "r.pdf"], "unknown suffix"),
    ],
)
def test_mistakes_exit_2_with_the_reason(reviews_csv, extra, message, capsys):
    assert main(["report", str(reviews_csv), *extra]) == 2
    assert message in capsys.readouterr().err


def test_a_missing_file_exits_2(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope.csv"), "--text", "a", "--target", "b"]) == 2
    assert "no such file" in capsys.readouterr().err
