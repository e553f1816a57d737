"""The embed-scale benchmark's section of docs/scale.md, from made-up results (no model)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from benchmarks import _common, embed_scale
from benchmarks import _markdown as md

META = {
    "command": "python -m benchmarks.embed_scale --write-docs",
    "code": "abc",
    "date": "d",
    "cpu": "Some CPU",
    "cpu_features": "AVX2 yes, AVX-512 BF16 no, AMX BF16 no",
    "cores": 2,
    "memory": "24 GiB",
    "versions": {"torch": "2.14.1"},
}


def _results(embed_rss=(500.0, 520.0), embed_s=(10.0, 100.0)):
    memory = []
    for i, n in enumerate((10_000, 100_000)):
        memory.append(
            {"kind": "embed", "rows": n, "seconds": embed_s[i], "peak_rss_mib": embed_rss[i]}
        )
        memory.append(
            {"kind": "in-memory", "rows": n, "seconds": (9.5, 99.0)[i], "peak_rss_mib": 900.0}
        )
    dask = {
        "0": {"seconds": 20.0, "rows": 4000},
        "1": {"seconds": 22.0, "rows": 4000, "max_abs_diff": 1e-6, "compared": 200},
        "2": {"seconds": 12.0, "rows": 4000, "max_abs_diff": 2e-6, "compared": 200},
    }
    return {
        "memory": memory,
        "dask": dask,
        "load_before": 1.0,
        "load_after": 2.0,
        "chunk_size": 2048,
        "dask_rows": 4000,
    }


def test_the_section_names_its_command_the_cpu_and_each_figure_of_the_issue():
    text = embed_scale.render(_results(), META)
    assert "`python -m benchmarks.embed_scale --write-docs`" in text
    assert "Some CPU: AVX2 yes, AVX-512 BF16 no, AMX BF16 no" in text
    assert "peak RSS at 100,000 rows is +4.0% of that at 10,000 rows (flat within 10%: " in text
    assert "at 100,000 rows: -1.0% vs in memory (within 10%: goal met)" in text
    assert "at 10,000 rows: -5.0% vs in memory (within 10%: goal met)" in text
    assert "2 workers vs 1: 1.83× the speed" in text
    assert "(1 worker vs in-process, the same 2 threads): +10.0% time" in text
    assert (
        "rows equal the in-process rows to 2.0e-06 (largest absolute difference, first 200" in text
    )
    # the section fits between the markers of docs/scale.md
    page = (_common.ROOT / "docs" / "scale.md").read_text()
    assert text in md.replace_block(page, "embed-scale", text)


def test_a_missed_goal_is_said():
    text = embed_scale.render(_results(embed_rss=(500.0, 600.0), embed_s=(10.0, 150.0)), META)
    assert "+20.0% of that at 10,000 rows (flat within 10%: goal not met)" in text
    assert "at 100,000 rows: -34.0% vs in memory (within 10%: goal not met)" in text


def test_the_command_reproduces_the_sizes_and_quick_runs_never_write_docs():
    full = SimpleNamespace(quick=False, write_docs=True)
    assert embed_scale.command_line(full, dict(embed_scale.FULL)) == (
        "python -m benchmarks.embed_scale --write-docs"
    )
    other = dict(embed_scale.FULL, sizes=[10_000, 50_000])
    assert embed_scale.command_line(full, other) == (
        "python -m benchmarks.embed_scale --sizes 10000 50000 --dask-rows 4000 "
        "--chunk-size 2048 --write-docs"
    )
    with pytest.raises(SystemExit, match="2"):
        embed_scale.main(["--quick", "--write-docs"])
