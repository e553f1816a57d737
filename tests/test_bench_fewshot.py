"""The few-shot benchmark's tables, from made-up results (no model, no data set)."""

from __future__ import annotations

from benchmarks import fewshot

META = {"command": "python -m benchmarks.fewshot", "code": "abc", "date": "d", "cpu": "cpu"}


def _result(ours_acc, setfit_acc, ours_s=10.0, setfit_s=30.0, frozen_acc=0.5):
    cells = []
    for seed, (a, b) in enumerate(zip(ours_acc, setfit_acc, strict=True)):
        results = {
            "ours": {"accuracy": a, "fit_s": ours_s},
            "setfit": {"accuracy": b, "fit_s": setfit_s},
            "frozen": {"accuracy": frozen_acc, "fit_s": 5.0},
        }
        cells.append({"task": "tweets", "n_per_class": 8, "seed": seed, "results": results})
    cfg = {
        "tasks": ["tweets"],
        "n_per_class": [8],
        "seeds": len(cells),
        "n_test": 1000,
        "threads": 2,
        "systems": ["frozen", "setfit", "ours"],
        "pairs": {"n_classes": [1000], "per_class": 2, "iterations": 20, "batch_size": 16},
    }
    pairs = [
        {
            "system": s,
            "n_classes": 1000,
            "n_pairs": 80_000,
            "seconds": t,
            "peak_rss_mib": m,
            "rss_before_mib": 100.0,
        }
        for s, t, m in (("setfit", 8.0, 900.0), ("ours", 0.2, 110.0))
    ]
    return {"config": cfg, "cells": cells, "pairs": pairs}


def test_verdict_compares_the_gap_with_its_noise():
    assert fewshot._verdict([0.80, 0.81, 0.82], [0.70, 0.71, 0.72]) == "better"
    assert fewshot._verdict([0.60, 0.61, 0.62], [0.70, 0.71, 0.72]) == "worse"
    assert fewshot._verdict([0.80, 0.60, 0.70], [0.70, 0.70, 0.71]) == "tie (within noise)"
    assert fewshot._verdict([0.8], [0.7]) == "one seed"


def test_goal_column_needs_accuracy_time_and_the_frozen_row():
    met = fewshot.render_accuracy(_result([0.8, 0.81, 0.82], [0.7, 0.71, 0.72]))
    assert met.endswith(" yes |") and "0.33×" in met
    too_slow = fewshot.render_accuracy(_result([0.8, 0.81, 0.82], [0.7, 0.71, 0.72], ours_s=20))
    assert too_slow.endswith("**no** |") and "0.67×" in too_slow
    below_frozen = fewshot.render_accuracy(
        _result([0.8, 0.81, 0.82], [0.7, 0.71, 0.72], frozen_acc=0.9)
    )
    assert below_frozen.endswith("**no** |")


def test_document_names_its_command_and_the_pair_rows():
    text = fewshot.render(_result([0.8, 0.81], [0.7, 0.72]), META)
    assert "`python -m benchmarks.fewshot`" in text and "shared" in text
    assert "SetFit ContrastiveDataset" in text and " 100.00 |" in text  # µs per pair


def test_a_stopped_run_renders_its_complete_seeds_only(tmp_path, monkeypatch):
    import json

    result = _result([0.8, 0.81, 0.9], [0.7, 0.72, 0.5])
    result["config"] = {**result["config"], "tasks": ["tweets", "domain"], "seeds": 5}
    # seeds 0 and 1 have both tasks; seed 2 was stopped after its first task
    cells = []
    for cell in result["cells"]:
        cells.append(cell)
        if cell["seed"] < 2:
            cells.append({**cell, "task": "domain"})
    result["cells"] = cells
    saved = {**result, "code": "abc", "command": "python -m benchmarks.fewshot", "minutes": 1.0}
    partial = tmp_path / "fewshot-partial.json"
    partial.write_text(json.dumps(saved))
    out = tmp_path / "fewshot.md"
    monkeypatch.setattr(fewshot._common, "machine_info", lambda: {"cpu": "cpu"})
    fewshot.main(["--render", str(partial), "--output", str(out)])
    text = out.read_text()
    assert "stopped after 5 of 10 cells; tables of its 2 complete seed(s)" in text
    assert "2 seed(s) of the labelled sample" in text
    assert "80.5 ± 0.7" in text  # seeds 0 and 1 only: the unfinished seed's 0.9 is left out
