"""Cross-validation cost with and without the embedding cache.

Times ``GridSearchCV(cv=5)`` over 6 values of ``C`` for
``Pipeline([TextEncoder(), LogisticRegression()])`` on real sentences, with the
in-memory cache, with a disk cache, and without a cache, and divides each by the
time of one plain encoding pass over the same sentences (the floor: every
sentence encoded once). All measured in one run, on the packaged
all-MiniLM-L6-v2.

The cached searches run twice: with the BLAS library's default thread count and
limited to one thread (``threadpoolctl``). The second row shows what the cache
leaves once the 31 ``LogisticRegression`` fits stop paying for BLAS threads,
which on small problems can cost more than they give; the search over the
precomputed features alone is timed for the same reason.

Run:  python benchmarks/bench_cache.py [--n-sentences 2000] [--skip-uncached]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_info, threadpool_limits

import sktransfer
from sktransfer import TextEncoder
from sktransfer._base import LOADED_NETWORKS
from sktransfer.cache import cache_info, clear_cache

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import C_VALUES, sample_sentences  # noqa: E402


def grid_search_seconds(cache, X, y, features=None) -> float:
    """Time the search; with ``features`` given, search over the head alone."""
    head = LogisticRegression(max_iter=1000)
    if features is None:
        LOADED_NETWORKS.clear()  # every search pays for its own model load
        model = Pipeline([("enc", TextEncoder(cache=cache, progress=False)), ("clf", head)])
        grid = {"clf__C": C_VALUES}
    else:
        X, model, grid = features, head, {"C": C_VALUES}
    start = time.perf_counter()
    GridSearchCV(model, grid, cv=5).fit(X, y)
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
        features = encoder.transform(X)
        encode_times.append(time.perf_counter() - start)
    one_pass = statistics.median(encode_times)
    blas_default = max(
        (pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"),
        default=1,
    )

    rows = [("one encode pass (floor)", "", one_pass, None)]
    for threads in (blas_default, 1):
        with threadpool_limits(limits=threads, user_api="blas"):
            seconds = grid_search_seconds(None, None, y, features=features)
            rows.append(("LogisticRegression alone, on features", threads, seconds, None))
            clear_cache()
            seconds = grid_search_seconds("memory", X, y)
            rows.append(("GridSearchCV, cache='memory'", threads, seconds, cache_info().misses))
            with tempfile.TemporaryDirectory() as tmp:
                seconds = grid_search_seconds(tmp, X, y)
                rows.append(
                    ("GridSearchCV, cache=<directory>", threads, seconds, cache_info(tmp).misses)
                )
    if not args.skip_uncached:
        seconds = grid_search_seconds(None, X, y)
        rows.append(("GridSearchCV, cache=None", blas_default, seconds, None))

    print(
        f"sktransfer {sktransfer.__version__}; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores; {len(X)} VADER sentences; all-MiniLM-L6-v2; "
        f"GridSearchCV(cv=5) over {len(C_VALUES)} values of C (31 pipeline fits)\n"
    )
    print(f"| {'what':38s} | BLAS threads | seconds | × one encode pass | sentences encoded |")
    print(f"|{'-' * 40}|--------------|---------|-------------------|-------------------|")
    for name, threads, seconds, encoded in rows:
        encoded_text = "" if encoded is None else str(encoded)
        print(
            f"| {name:38s} | {threads!s:12s} | {seconds:7.1f} | {seconds / one_pass:17.2f} "
            f"| {encoded_text:17s} |"
        )


if __name__ == "__main__":
    main()
