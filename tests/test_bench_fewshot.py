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


# ------------------------------------------------ predictions at precision="auto"
def _precision_result(auto_in: str, gaps: list[float]) -> dict:
    from benchmarks import fewshot_precision

    sizes = {**fewshot_precision.QUICK, "tasks": ["tweets", "domain"], "seeds": len(gaps)}
    cells = [
        {
            "task": task,
            "seed": seed,
            "accuracy": {"float32": 70.0, "auto": 70.0 + gap},
            "seconds": {"float32": [2.0, 2.2], "auto": [1.0, 1.1]},
            "precision": auto_in,
            "reason": "auto: mocked",
        }
        for task in sizes["tasks"]
        for seed, gap in enumerate(gaps)
    ]
    return {"sizes": sizes, "cells": cells}


PRECISION_META = {
    "command": "python -m benchmarks.fewshot_precision",
    "code": "abc",
    "date": "today",
    "cpu": "Some CPU",
    "cpu_features": "AVX2 yes, AVX-512 BF16 yes, AMX BF16 no",
}


def test_fewshot_precision_verdict_holds_the_gap_to_the_bar():
    from benchmarks import fewshot_precision

    text = fewshot_precision.render(_precision_result("bfloat16", [0.1, -0.2]), PRECISION_META)
    assert "Over 4 fits, 'auto' (ran in bfloat16) minus float32: mean -0.05 points" in text
    assert "largest -0.2 (within the 0.3-point bar)" in text
    assert "`predict` 2.00× float32's speed" in text
    row = next(line for line in text.splitlines() if line.startswith("| tweets"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells == [
        "tweets",
        "bfloat16",
        "70.0 ± 0.0",
        "69.9 ± 0.2",
        "-0.2",
        "2.10",
        "1.05",
        "2.00×",
    ]
    text = fewshot_precision.render(_precision_result("bfloat16", [0.1, 0.5]), PRECISION_META)
    assert "largest +0.5 (outside the 0.3-point bar)" in text
    text = fewshot_precision.render(_precision_result("float32", [0.0]), PRECISION_META)
    assert "so `'auto'` ran in float32" in text


def test_fewshot_precision_block_is_in_the_document():
    from benchmarks import _markdown as md
    from benchmarks import fewshot_precision
    from benchmarks._common import ROOT

    text = (ROOT / "docs" / "fewshot.md").read_text()
    assert md.replace_block(text, fewshot_precision.BLOCK, "x")
