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
        "code": "0123456789ab",
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
    assert "0123456789ab" in text
    assert "some CPU, 2 cores" in text
    assert "torch 2.0" in text
    assert "## Part" in text and "**Verdict.** ours wins" in text and "- note" in text


def test_full_and_quick_configurations_cover_every_part():
    assert set(run.FULL) == set(run.QUICK) == set(run.ORDER)
    # the accuracy part reuses the memory part's corpus, so the sizes must agree
    for sizes in (run.FULL, run.QUICK):
        assert sizes["accuracy-text"]["n_corpus"] == sizes["memory"]["n_sentences"]
    assert run.FULL["memory"]["rounds"] >= 2  # a spread for the verdict
    assert run.FULL["throughput-text"]["repeats"] >= 3
    assert run.FULL["throughput-images"]["repeats"] >= 3
    assert run.FULL["accuracy-text"]["seeds"] >= 3
    assert run.FULL["accuracy-images"]["seeds"] >= 3
    assert run.FULL["finetune"]["seeds"] >= 3
    assert run.FULL["precision"]["n_text"] >= 2000  # the accuracy bar's sentence count


# --------------------------------------------------------------- code hash
def _tree(root):
    for rel, text in {
        "sktransfer/__init__.py": "x = 1\n",
        "sktransfer/sub/mod.py": "y = 2\n",
        "benchmarks/run.py": "z = 3\n",
        "docs/speed.md": "prose\n",
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


@pytest.mark.parametrize(
    "rel", ["sktransfer/__init__.py", "sktransfer/sub/mod.py", "benchmarks/run.py"]
)
def test_code_hash_changes_with_the_library_or_the_benchmarks(tmp_path, rel):
    _tree(tmp_path)
    before = run.code_hash(tmp_path)
    assert run.code_hash(tmp_path) == before  # deterministic
    (tmp_path / rel).write_text("changed = True\n")
    assert run.code_hash(tmp_path) != before


def test_code_hash_ignores_documents(tmp_path):
    _tree(tmp_path)
    before = run.code_hash(tmp_path)
    (tmp_path / "docs/speed.md").write_text("other prose\n")
    assert run.code_hash(tmp_path) == before


# ---------------------------------------------------------------- verdicts
def test_compare_names_a_winner_only_beyond_the_spread():
    assert md.compare([10.0, 11.0, 12.0], [5.0, 6.0, 7.0]) == "a"
    assert md.compare([5.0, 6.0, 7.0], [10.0, 11.0, 12.0]) == "b"
    # medians differ by 5% but the ranges overlap: within the noise
    assert md.compare([9.0, 10.0, 12.0], [10.5, 10.5, 11.0]) == "tie"
    # one repeat on either side: no spread to compare with, so no winner
    assert md.compare([10.0], [9.0]) == "no spread"
    assert md.compare([10.0, 10.5], [9.0]) == "no spread"


def test_throughput_verdict_says_tie_within_noise():
    from benchmarks import throughput

    ours = {"label": "ours", "rate": 105.0, "rates": [95.0, 105.0, 110.0]}
    peer = {"label": "peer", "rate": 100.0, "rates": [98.0, 100.0, 101.0]}
    assert "a tie with peer" in throughput._versus(ours, peer)
    fast = {"label": "ours", "rate": 200.0, "rates": [190.0, 200.0, 210.0]}
    text = throughput._versus(fast, peer)
    assert "2.00×" in text and "faster than" in text and "tie" not in text
    single = {"label": "peer", "rate": 100.0, "rates": [100.0]}
    text = throughput._versus(fast, single)
    assert "no spread" in text and "faster" not in text


def test_memory_verdict_says_tie_within_noise():
    from benchmarks import memory

    def lib(peaks, encode_s=10.0):
        return {
            "peak_mib": peaks[0],
            "loaded_mib": 900.0,
            "encode_s": encode_s,
            "cosine": None,
            "peaks": peaks,
        }

    libs = {
        "sentence-transformers": lib([1000.0, 1030.0]),
        "embetter": lib([990.0, 1020.0]),
        "skrub": lib([1100.0, 1110.0]),
        "sktransfer": lib([1010.0, 1000.0]),
    }
    text = memory.render({"n": 100, "rounds": 2, "libraries": libs})
    assert "A tie" in text and "A peer wins" not in text
    libs["sktransfer"] = lib([1200.0, 1210.0])
    assert "A peer wins" in memory.render({"n": 100, "rounds": 2, "libraries": libs})


# ----------------------------------------------------------- generated docs
def test_replace_block_rewrites_only_between_the_markers():
    text = "intro\n<!-- generated:t -->\nold\n<!-- /generated:t -->\nafter\n"
    out = md.replace_block(text, "t", "| new |")
    assert out == "intro\n<!-- generated:t -->\n| new |\n<!-- /generated:t -->\nafter\n"
    assert md.replace_block(out, "t", "| new |") == out  # idempotent


def test_replace_block_names_a_missing_marker():
    with pytest.raises(ValueError, match="generated:absent"):
        md.replace_block("no markers here", "absent", "x")


def test_every_generated_block_has_its_markers_in_docs():
    """Each block the suite writes exists exactly once in its document."""
    fake = {part: None for part in run.ORDER}
    blocks = {
        "speed.md": ["speed-text", "speed-images", "allocator-fit", "precision"],
        "cache.md": ["cache"],
        "finetuning.md": ["finetune"],
    }
    assert set(blocks) == set(run.DOCS)
    for name, names in blocks.items():
        text = (run._common.ROOT / "docs" / name).read_text()
        for block in names:
            assert md.replace_block(text, block, "x")  # raises if the markers are wrong
    assert fake  # every part is listed in ORDER


# ------------------------------------------------------------------ resume
def _fake_suite(monkeypatch, tmp_path, code="c0de"):
    import json

    ran = []

    def fake_subprocess_run(cmd, cwd, check, env=None):
        part = cmd[cmd.index("--part") + 1]
        ran.append(part)
        result_file = cmd[cmd.index("--result") + 1]
        with open(result_file, "w") as f:
            json.dump({"part": part}, f)

    written = []
    monkeypatch.setattr(run, "check_data", lambda parts, sizes=None: None)
    monkeypatch.setattr(run, "code_hash", lambda root=None: code)
    monkeypatch.setattr(run.subprocess, "run", fake_subprocess_run)
    monkeypatch.setattr(run, "render", lambda results: [json.dumps(results, sort_keys=True)])
    monkeypatch.setattr(
        run, "write_docs", lambda results, meta, folder: written.append(folder) or []
    )
    return ran, written


def test_resume_reuses_finished_parts_and_reruns_changed_ones(tmp_path, monkeypatch):
    """A saved part with the same sizes and code is reused; other sizes or code run again."""
    import json

    ran, _ = _fake_suite(monkeypatch, tmp_path, code="c0de")
    parts = tmp_path / "full"
    parts.mkdir()
    saved = {"seconds": 60.0, "date": "2026-01-01 00:00 UTC", "result": {"part": "old"}}
    (parts / "throughput-text.json").write_text(
        json.dumps({**saved, "config": run.FULL["throughput-text"], "code": "c0de"})
    )
    (parts / "throughput-images.json").write_text(
        json.dumps({**saved, "config": {"n_images": 1, "repeats": 1}, "code": "c0de"})
    )
    output = tmp_path / "out.md"
    argv = ["--only", "throughput", "--resume", "--workdir", str(tmp_path)]
    run.main([*argv, "--output", str(output)])
    assert ran == ["throughput-images"]
    text = output.read_text()
    assert '"throughput-text": {"part": "old"}' in text
    assert '"throughput-images": {"part": "throughput-images"}' in text
    assert "2026-01-01 00:00 UTC" in text  # when the reused part ran
    assert "c0de" in text  # the code hash is published

    # without --resume everything runs again
    ran.clear()
    run.main(["--only", "throughput", "--workdir", str(tmp_path), "--output", str(output)])
    assert ran == ["throughput-text", "throughput-images"]


def test_resume_reruns_a_part_kept_from_other_code(tmp_path, monkeypatch):
    import json

    ran, _ = _fake_suite(monkeypatch, tmp_path, code="new")
    parts = tmp_path / "full"
    parts.mkdir()
    record = {"seconds": 60.0, "date": "2026-01-01 00:00 UTC", "result": {"part": "old"}}
    for part, code in (("throughput-text", "old"), ("throughput-images", None)):
        extra = {} if code is None else {"code": code}  # a record from before code hashes
        (parts / f"{part}.json").write_text(
            json.dumps({**record, "config": run.FULL[part], **extra})
        )
    output = tmp_path / "out.md"
    run.main(
        ["--only", "throughput", "--resume", "--workdir", str(tmp_path), "--output", str(output)]
    )
    assert ran == ["throughput-text", "throughput-images"]
    assert '"part": "old"' not in output.read_text()
    kept = json.loads((parts / "throughput-text.json").read_text())
    assert kept["code"] == "new"


def test_quick_and_partial_runs_never_write_docs(tmp_path, monkeypatch):
    ran, written = _fake_suite(monkeypatch, tmp_path)
    output = tmp_path / "build" / "benchmarks.md"
    run.main(["--quick", "--workdir", str(tmp_path), "--output", str(output)])
    assert ran == run.ORDER
    assert written == [output.parent / "docs"]
    written.clear()
    run.main(["--only", "cv", "--workdir", str(tmp_path), "--output", str(output)])
    assert written == [output.parent / "docs"]


def test_only_a_complete_full_run_writes_docs(tmp_path, monkeypatch):
    ran, written = _fake_suite(monkeypatch, tmp_path)
    monkeypatch.setattr(run._common, "ROOT", tmp_path)
    run.main(["--workdir", str(tmp_path / "parts")])
    assert ran == run.ORDER
    assert written == [tmp_path / "docs"]
    assert (tmp_path / "docs" / "benchmarks.md").exists()


def test_a_code_change_during_the_run_stops_it(tmp_path, monkeypatch):
    """Figures of a part that ran on other code than the recorded hash are not kept."""
    ran, _ = _fake_suite(monkeypatch, tmp_path)
    hashes = iter(["before", "after"])
    monkeypatch.setattr(run, "code_hash", lambda root=None: next(hashes))
    with pytest.raises(SystemExit, match="the code changed while throughput-text ran"):
        run.main(
            [
                "--only",
                "throughput",
                "--workdir",
                str(tmp_path),
                "--output",
                str(tmp_path / "out.md"),
            ]
        )
    assert not (tmp_path / "full" / "throughput-text.json").exists()


def test_versus_reports_ties_and_missing_spread():
    assert md.versus("ours", [80.0, 82.0], "peer", [70.0, 71.0], "points").startswith(
        "ours beats peer by 10.50 points"
    )
    tie = md.versus("ours", [75.0, 78.0, 76.0], "peer", [76.5, 77.0, 74.0], "points")
    assert tie.startswith("ours ties with peer") and "within the range" in tie
    assert "loses to" in md.versus("ours", [60.0, 61.0], "peer", [70.0, 71.0], "points")
    single = md.versus("ours", [80.0], "peer", [70.0], "points")
    assert "no spread measured" in single and "beats" not in single


def test_every_generated_table_states_the_cpu_features():
    """Speed depends on bfloat16 support: each table says what the CPU had."""
    from benchmarks import _common
    from benchmarks import _markdown as md

    assert _common.cpu_capabilities({"avx2", "avx512_bf16"}) == (
        "AVX2 yes, AVX-512 BF16 yes, AMX BF16 no"
    )
    meta = {
        "command": "python -m benchmarks",
        "code": "abc",
        "date": "today",
        "cpu": "Some CPU",
        "cpu_features": "AVX2 yes, AVX-512 BF16 no, AMX BF16 no",
    }
    assert "Some CPU: AVX2 yes, AVX-512 BF16 no, AMX BF16 no" in md.generated_note(meta)


def test_accuracy_sizes_that_do_not_fit_the_corpus_stop_the_run_first(monkeypatch):
    """A per-domain split larger than the corpus's smallest domain fails before any part."""
    import numpy as np

    from benchmarks import memory, run

    monkeypatch.setattr("sktransfer.datasets.load_vader", lambda **kwargs: None)
    domains = np.asarray(["tweets"] * 50 + ["movie_reviews"] * 10)
    monkeypatch.setattr(memory, "corpus", lambda cfg: ([], [], domains))
    sizes = {"accuracy-text": {"n_corpus": 60, "n_train": 6, "n_test": 5}}
    with pytest.raises(SystemExit, match="only 10 sentences of domain 'movie_reviews'"):
        run.check_data(["accuracy-text"], sizes)
    sizes["accuracy-text"]["n_test"] = 4
    run.check_data(["accuracy-text"], sizes)


@pytest.mark.real_model
def test_precision_check_compares_with_float32_on_a_cpu_with_native_bfloat16(monkeypatch):
    # Where "auto" picks bfloat16, a reference left at the default precision is
    # bfloat16 too, and the check compared bfloat16 with itself (cosine 1).
    from benchmarks import check_precision
    from sktransfer import _precision

    monkeypatch.delenv("SKTRANSFER_BFLOAT16")  # set for every test by conftest
    monkeypatch.setattr(_precision, "native_bfloat16", lambda device: (True, "native (mocked)"))
    monkeypatch.setattr(check_precision, "_onnx_variants", lambda *args: [])
    result = check_precision.run({"n_text": 16, "n_accuracy": 0})
    reference, bf16 = result["rows"]
    assert reference["key"] == "float32" and bf16["key"] == "bfloat16"
    assert bf16["cosine"][0] < 1 - 1e-6
    assert "meets it" in check_precision.render(result)
    # The timed probe it replaces while it runs is back afterwards.
    assert _precision.cpu_bfloat16_speedup.__name__ == "cpu_bfloat16_speedup"


@pytest.mark.real_model
def test_precision_check_compares_each_int8_variant_with_float32(monkeypatch):
    # Each int8 row is its quantised model against TextEncoder float32: a row
    # compared with itself (cosine 1), with another variant, or with a runner
    # left in place by the previous row would not match what is computed here.
    pytest.importorskip("onnxruntime.quantization")
    import numpy as np

    from benchmarks import check_precision
    from sktransfer import TextEncoder
    from sktransfer._hub import packaged_text_model_dir

    picked = ("ort-dynamic-matmul-perchannel", "ort-static-minmax")
    seen = {}  # key -> (texts, features) of the variant's last call
    every = check_precision.int8_variants

    def some(encoder, calibration, workdir):
        assert len(calibration) == check_precision.N_CALIBRATION
        chosen = []
        for label, key, transform in every(encoder, calibration, workdir):
            if key in picked:
                chosen.append((label, key, _recording(key, transform, seen, encoder)))
        return chosen

    monkeypatch.setattr(check_precision, "int8_variants", some)
    result = check_precision.run({"n_text": 16, "n_accuracy": 0})
    rows = {row["key"]: row for row in result["rows"]}
    assert set(picked) <= set(rows) and set(picked) <= set(seen)
    folder = str(packaged_text_model_dir("all-MiniLM-L6-v2"))
    exact = TextEncoder(folder, progress=False, cache=None, precision="float32").fit()
    for key in picked:
        texts, quantised = seen[key]
        reference = exact.transform(texts)
        cos = np.sum(reference * quantised, 1) / (
            np.linalg.norm(reference, axis=1) * np.linalg.norm(quantised, axis=1)
        )
        assert rows[key]["cosine"] == pytest.approx([cos.mean(), cos.min()], abs=1e-6)
        assert rows[key]["cosine"][0] < 1 - 1e-5  # int8 is not float32
    assert rows["onnx"]["cosine"][1] > 0.9999  # the float32 export is float32
    text = check_precision.render(result)
    assert "ONNX Runtime static QDQ" in text and "fails" in text


def _recording(key, transform, seen, encoder):
    """``transform``, noting its input and output, and checking it restores ``encoder``."""

    def call(texts):
        out = transform(texts)
        assert "_runner" not in vars(encoder)  # the float32 runner is back
        seen[key] = (list(texts), out)
        return out

    return call


def test_write_docs_puts_a_partial_runs_sections_in_docs(tmp_path, monkeypatch):
    ran, written = _fake_suite(monkeypatch, tmp_path)
    output = tmp_path / "build" / "benchmarks.md"
    argv = ["--only", "precision", "--workdir", str(tmp_path), "--output", str(output)]
    run.main([*argv, "--write-docs"])
    assert ran == ["precision"]
    assert written == [run._common.ROOT / "docs"]
    with pytest.raises(SystemExit):
        run.main(["--quick", "--write-docs", "--workdir", str(tmp_path)])
