"""The benchmark suite's markdown writer and configuration; no peer is imported."""

import pytest

from benchmarks import _markdown as md
from benchmarks import run


def test_table_aligns_columns_and_escapes_pipes():
    text = md.table(["what", "n"], [["a|b", "1"], ["longer name", "22"]])
    lines = text.splitlines()
    assert lines[0] == "| what        |  n |"
    assert lines[1] == "| ----------- | -: |"
    assert lines[2] == "| a\\|b        |  1 |"
    assert lines[3] == "| longer name | 22 |"


def test_table_rejects_ragged_rows():
    with pytest.raises(ValueError, match="one cell per header"):
        md.table(["a", "b"], [["only one"]])


def test_number_formats():
    assert md.ratio(3.0, 2.0) == "1.50×"
    assert md.mean_sd([80.0, 82.0, 84.0]) == "82.0 ± 2.0"
    assert md.mean_sd([0.5], digits=2) == "0.50 ± 0.00"
    assert md.number(None) == "—"
    assert md.number(1234.56, 0) == "1,235"


def test_document_states_how_it_was_made():
    meta = {
        "command": "python -m benchmarks",
        "date": "2026-01-01 00:00 UTC",
        "total_minutes": 12.0,
        "cpu": "some CPU",
        "cores": 2,
        "memory": "8 GiB",
        "os": "Linux",
        "python": "3.11",
        "versions": {"torch": "2.0"},
    }
    text = md.document(meta, [md.section("Part", "intro", "| a |", "ours wins", ["note"])])
    assert "`python -m benchmarks`" in text
    assert "some CPU, 2 cores" in text
    assert "torch 2.0" in text
    assert "## Part" in text and "**Verdict.** ours wins" in text and "- note" in text


def test_full_and_quick_configurations_cover_every_part():
    assert set(run.FULL) == set(run.QUICK) == set(run.ORDER)
    # the accuracy part reuses the memory part's corpus, so the sizes must agree
    for sizes in (run.FULL, run.QUICK):
        assert sizes["accuracy-text"]["n_corpus"] == sizes["memory"]["n_sentences"]
    assert run.FULL["cv"]["n_sentences"] >= 2000
    assert run.FULL["memory"]["n_sentences"] == 20000
    assert run.FULL["accuracy-text"]["seeds"] >= 3
    assert run.FULL["accuracy-images"]["seeds"] >= 3


def test_resume_reuses_finished_parts_and_reruns_changed_ones(tmp_path, monkeypatch):
    """A saved part with the same sizes is reused; one with other sizes runs again."""
    import json

    ran = []

    def fake_subprocess_run(cmd, cwd, check):
        part = cmd[cmd.index("--part") + 1]
        ran.append(part)
        result_file = cmd[cmd.index("--result") + 1]
        with open(result_file, "w") as f:
            json.dump({"part": part}, f)

    monkeypatch.setattr(run, "check_data", lambda parts: None)
    monkeypatch.setattr(run.subprocess, "run", fake_subprocess_run)
    monkeypatch.setattr(run, "render", lambda results: [json.dumps(results, sort_keys=True)])
    parts = tmp_path / "full"
    parts.mkdir()
    saved = {"seconds": 60.0, "date": "2026-01-01 00:00 UTC", "result": {"part": "old"}}
    (parts / "throughput-text.json").write_text(
        json.dumps({**saved, "config": run.FULL["throughput-text"]})
    )
    (parts / "throughput-images.json").write_text(
        json.dumps({**saved, "config": {"n_images": 1, "repeats": 1}})
    )
    output = tmp_path / "out.md"
    argv = ["--only", "throughput", "--resume", "--workdir", str(tmp_path)]
    run.main([*argv, "--output", str(output)])
    assert ran == ["throughput-images"]
    text = output.read_text()
    assert '"throughput-text": {"part": "old"}' in text
    assert '"throughput-images": {"part": "throughput-images"}' in text
    assert "2026-01-01 00:00 UTC" in text  # when the reused part ran

    # without --resume everything runs again
    ran.clear()
    run.main(["--only", "throughput", "--workdir", str(tmp_path), "--output", str(output)])
    assert ran == ["throughput-text", "throughput-images"]
