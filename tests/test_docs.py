"""The Python examples in the README and the user guide run and print what they show.

A ```python block may be followed by a ```text block: the output the example
prints. The test runs the blocks of a page in order, in one namespace, and
compares each block's printed output with its ```text block; a block without
one must print nothing. Decimal numbers are compared with a tolerance (other
BLAS builds and thread counts change the last digits of a training loss), every
other character exactly.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [
    ROOT / "README.md",
    ROOT / "docs" / "encoders.md",
    ROOT / "docs" / "finetuning.md",
    ROOT / "docs" / "adaptation.md",
    ROOT / "docs" / "transfer_report.md",
]

EXAMPLE = re.compile(r"```python\n(.*?)```(?:\s*?\n```text\n(.*?)```)?", flags=re.S)
DECIMAL = re.compile(r"-?\d+\.\d*(?:e[-+]?\d+)?")


def examples(path: Path) -> list[tuple[str, str | None, int]]:
    """(code, expected output or None, line number) for each python block."""
    text = path.read_text()
    return [
        (m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1) for m in EXAMPLE.finditer(text)
    ]


def same_output(printed: str, expected: str, rel: float = 0.05, tol: float = 0.02) -> bool:
    """Equal text, decimal numbers within ``rel`` (relative) or ``tol`` (absolute)."""
    printed, expected = printed.strip(), expected.strip()
    if DECIMAL.sub("#", printed) != DECIMAL.sub("#", expected):
        return False
    pairs = zip(DECIMAL.findall(printed), DECIMAL.findall(expected), strict=True)
    return all(math.isclose(float(a), float(b), rel_tol=rel, abs_tol=tol) for a, b in pairs)


def run_examples(path: Path) -> list[str]:
    """Run a page's examples; return what went wrong (empty: all as documented)."""
    blocks = examples(path)
    assert blocks, f"{path.name} has no python example"
    assert any(expected is not None for _, expected, _ in blocks), (
        f"{path.name}: no example shows its output in a ```text block"
    )
    namespace: dict = {}
    problems = []
    for code, expected, line in blocks:
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            exec(compile(code, f"{path.name}:{line}", "exec"), namespace)  # noqa: S102
        printed = stdout.getvalue()
        if expected is None and printed:
            problems.append(f"{path.name}:{line} prints but shows no output:\n{printed}")
        elif expected is not None and not same_output(printed, expected):
            problems.append(
                f"{path.name}:{line} printed\n{printed}\nbut the page shows\n{expected}"
            )
    return problems


@pytest.mark.real_model
@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_python_examples_print_what_the_page_shows(path, tmp_path, monkeypatch):
    import sklearn

    monkeypatch.chdir(tmp_path)  # what an example writes (a report page) lands here

    # A page may import skada, which switches metadata routing on for the process.
    with sklearn.config_context():
        problems = run_examples(path)
    assert not problems, "\n\n".join(problems)


def test_a_wrong_output_on_the_page_is_reported(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "```python\nprint(sum([0.1, 0.2]), 'a')\n```\n\n```text\n0.3 a\n```\n\n"
        "```python\nprint(2 + 2)\n```\n\n```text\n5\n```\n\n"
        "```python\nprint('unshown')\n```\n"
    )
    problems = run_examples(page)
    assert len(problems) == 2
    assert "page.md:9 printed\n4\n\nbut the page shows\n5" in problems[0]
    assert "page.md:17 prints but shows no output" in problems[1]


def test_a_page_without_shown_output_is_reported(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```python\nx = 1\n```\n")
    with pytest.raises(AssertionError, match="no example shows its output"):
        run_examples(page)


@pytest.mark.parametrize(
    ("printed", "expected", "same"),
    [
        ("[0.512, 0.42]", "[0.51, 0.421]", True),
        ("[0.6, 0.42]", "[0.51, 0.421]", False),
        ("['pos' 'neg']", "['pos' 'neg']", True),
        ("['pos' 'neg']", "['neg' 'pos']", False),
        ("2 4 log_loss", "2 4 log_loss", True),
        ("3 4 log_loss", "2 4 log_loss", False),
        ("[[0.2 0.8]]", "[[0.2 0.8]]\n", True),
        ("[0.5]", "[0.5, 0.5]", False),
    ],
)
def test_output_comparison(printed, expected, same):
    assert same_output(printed, expected) is same


def test_readme_quick_start_matches_ci():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = ci.strip().splitlines()[-1]
    assert test_command in readme, "README's test command and .ci/run have drifted"
