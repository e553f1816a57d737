"""The package itself: importing it stays cheap."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "sklearn", "sentence_transformers", "transformers", "timm", "PIL")


@pytest.mark.parametrize(
    ("module", "heavy"),
    [
        # The estimators and their dependencies load on first use, not on import.
        ("sktransfer", HEAVY),
        # The data loaders return sklearn Bunches but need no model code.
        ("sktransfer.datasets", ("torch", "sklearn.model_selection", "timm", "PIL")),
        # Domain adaptation: skada (and its global metadata-routing switch) only on use.
        ("sktransfer.adapt", (*HEAVY, "skada")),
    ],
)
def test_import_loads_no_heavy_dependency(module, heavy):
    code = f"import sys, {module}; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
