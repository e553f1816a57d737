"""The package itself: importing it stays cheap."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "sklearn", "sentence_transformers", "transformers", "timm", "PIL")


def test_import_loads_no_heavy_dependency():
    # The estimators and their dependencies load on first use, not on import.
    code = f"import sys, sktransfer; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
