"""Cross-validation cost with and without the embedding cache.

Times ``GridSearchCV(cv=5)`` over 6 values of ``C`` for
``Pipeline([TextEncoder(), LogisticRegression()])`` on real sentences, with the
in-memory cache, with a disk cache, and without a cache, and divides each by the
time of one plain encoding pass over the same sentences (the floor: every
sentence encoded once). All measured in one run, on the packaged
all-MiniLM-L6-v2.

Run:  python benchmarks/bench_cache.py [--n-sentences 2000] [--skip-uncached]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

import sktransfer
from sktransfer import TextEncoder
from sktransfer._base import LOADED_NETWORKS
from sktransfer.cache import cache_info, clear_cache

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import C_VALUES, sample_sentences  # noqa: E402


def grid_search_seconds(cache, X, y) -> float:
    pipe = Pipeline(
        [
            ("enc", TextEncoder(cache=cache, progress=False)),
            ("clf", LogisticRegression(max_iter=1000)),
        ]
    )
    start = time.perf_counter()
    GridSearchCV(pipe, {"clf__C": C_VALUES}, cv=5).fit(X, y)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-sentences", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the single encode")
    parser.add_argument("--skip-uncached", action="store_true")
    args = parser.parse_args()

    X, y, _ = sample_sentences(args.n_sentences)
    encoder = TextEncoder(cache=None, progress=False).fit()  # load once, untimed
    encoder.transform(X[:64])  # warm-up
    encode_times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        encoder.transform(X)
        encode_times.append(time.perf_counter() - start)
    one_pass = statistics.median(encode_times)

    rows = [("one encode pass (floor)", one_pass, None)]
    clear_cache()
    LOADED_NETWORKS.clear()  # the cached search pays for its own model load
    seconds = grid_search_seconds("memory", X, y)
    rows.append(("GridSearchCV, cache='memory'", seconds, cache_info().misses))
    with tempfile.TemporaryDirectory() as tmp:
        seconds = grid_search_seconds(tmp, X, y)
        rows.append(("GridSearchCV, cache=<directory>", seconds, cache_info(tmp).misses))
    if not args.skip_uncached:
        rows.append(("GridSearchCV, cache=None", grid_search_seconds(None, X, y), None))

    print(
        f"sktransfer {sktransfer.__version__}; {platform.processor() or platform.machine()}, "
        f"{__import__('os').cpu_count()} cores; {len(X)} VADER sentences; all-MiniLM-L6-v2; "
        f"GridSearchCV(cv=5) over {len(C_VALUES)} values of C (31 pipeline fits)\n"
    )
    print(f"| {'what':34s} | seconds | × one encode pass | sentences encoded |")
    print(f"|{'-' * 36}|---------|-------------------|-------------------|")
    for name, seconds, encoded in rows:
        encoded_text = "" if encoded is None else str(encoded)
        print(f"| {name:34s} | {seconds:7.1f} | {seconds / one_pass:17.2f} | {encoded_text:17s} |")


if __name__ == "__main__":
    main()
