"""How ``ImageEncoder`` splits the cores between JPEG decoding and the forward pass.

``ImageEncoder`` decodes in a thread pool of ``min(4, cores)`` threads, one batch
ahead of the forward pass, which runs on torch's (or ONNX Runtime's) threads.
This script times every split of a small grid -- forward threads 1 or all
cores, decoding threads 1 to cores + 1 -- on small JPEG files and on real
photos of several megapixels (Debian's wallpaper packages; see
``_common.large_photos``), for the default backend and ``backend="onnx"``. Each
backend runs in its own fresh process; the splits alternate within it for
``--rounds`` rounds (median and min–max images/s).

Usage::

    python -m benchmarks.thread_split            # -> docs/speed.md
    python -m benchmarks.thread_split --quick    # -> build/thread_split.md
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import _common
from benchmarks import _markdown as md

BLOCK = "thread-split"
BACKENDS = {
    "torch": "`ImageEncoder()` (default settings)",
    "onnx": "`ImageEncoder(backend='onnx')`",
}


def worker(cfg: dict) -> dict:
    """Time every split for one backend in this process."""
    from sktransfer import ImageEncoder

    cores = cfg["cores"]
    with tempfile.TemporaryDirectory() as tmp:
        inputs = _common.image_inputs(Path(tmp), cfg["n_small"], cfg["n_photos"])
        encoders = {}
        for threads in sorted({1, cores}):
            encoder = ImageEncoder(
                progress=False, cache=None, backend=cfg["backend"], n_threads=threads
            ).fit()
            encoder.transform(inputs["small"][:8])  # untimed: first-call costs
            encoders[threads] = encoder
        default_workers = encoders[cores]._adapter.n_workers
        splits = list(itertools.product(sorted(encoders), range(1, cores + 2)))
        rates: dict = {}
        for _ in range(cfg["rounds"]):
            for name, paths in inputs.items():
                for threads, workers in splits:
                    encoder = encoders[threads]
                    encoder._adapter.n_workers = workers
                    start = time.perf_counter()
                    encoder.transform(paths)
                    seconds = time.perf_counter() - start
                    rates.setdefault(f"{name}/{threads}/{workers}", []).append(len(paths) / seconds)
        precision = str(encoders[cores].precision_)
        megapixels = _common.megapixels(inputs["photos"])
    return {
        "rates": rates,
        "default": [cores, default_workers],
        "precision": precision,
        "n": {name: len(paths) for name, paths in inputs.items()},
        "megapixels": [min(megapixels), max(megapixels)],
    }


def run(cfg: dict, log=print) -> dict:
    results = {}
    for backend in BACKENDS:
        log(f"{backend} ...")
        payload = json.dumps({**cfg, "backend": backend})
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.thread_split", "--worker", payload],
            cwd=_common.ROOT,
            env=_common.worker_env(),
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        results[backend] = json.loads(out.strip().splitlines()[-1])
    return {"config": cfg, "results": results}


def render(result: dict, meta: dict) -> str:
    cfg = result["config"]
    header = ["backend", "forward threads", "decoding threads", "small JPEGs img/s", "photos img/s"]
    rows, verdicts = [], []
    for backend, label in BACKENDS.items():
        res = result["results"][backend]
        rates = res["rates"]
        default = tuple(res["default"])
        splits = sorted({tuple(int(v) for v in key.split("/")[1:]) for key in rates})
        for threads, workers in splits:
            cells = [f"{label}, ran in {res['precision']}", str(threads), str(workers)]
            if (threads, workers) == default:
                cells[2] += " (default)"
            for name in ("small", "photos"):
                values = rates[f"{name}/{threads}/{workers}"]
                cells.append(f"{np.median(values):.1f} ({md.spread(values)})")
            rows.append(cells)
        for name, what in (("small", "small JPEGs"), ("photos", "photos")):
            mine = rates[f"{name}/{default[0]}/{default[1]}"]
            best = max(splits, key=lambda s: np.median(rates[f"{name}/{s[0]}/{s[1]}"]))
            top = rates[f"{name}/{best[0]}/{best[1]}"]
            outcome_kind = md.compare(mine, top)
            if best == default:
                outcome = "the default split is the fastest"
            elif outcome_kind == "no spread":
                outcome = (
                    f"{best[0]} forward / {best[1]} decoding threads had the highest rate "
                    "(one round: no spread measured)"
                )
            elif outcome_kind == "tie":
                outcome = (
                    f"the default split ties with the fastest ({best[0]} forward / "
                    f"{best[1]} decoding threads; min–max ranges overlap)"
                )
            else:
                outcome = (
                    f"the default split is slower than {best[0]} forward / {best[1]} decoding "
                    f"threads ({np.median(mine):.1f} vs {np.median(top):.1f} images/s)"
                )
            verdicts.append(f"{backend}, {what}: {outcome}")
    small, photos = result["results"]["torch"]["n"].values()
    low, high = result["results"]["torch"]["megapixels"]
    return "\n\n".join(
        [
            "### Decoding and the forward pass: the split of the cores",
            f"{small} small JPEG files (220–427 px) and {photos} photos of {low:.1f}–{high:.1f} "
            "megapixels, EfficientNet-Lite0 at 224 px, batch 32, `cache=None`; forward threads "
            "are `n_threads`, decoding threads the encoder's decoding pool. Each backend in "
            f"its own fresh process, the splits alternating for {cfg['rounds']} round(s): "
            "median images/s (min–max).",
            md.table(header, rows),
            "**Verdict.** " + "; ".join(verdicts) + ".",
            md.generated_note(meta),
        ]
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round, few images -> build/")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    _common.large_photos()  # fail now, naming the packages, if the photos are missing
    cores = len(os.sched_getaffinity(0))
    cfg = {"cores": cores, "rounds": 1 if args.quick else args.rounds}
    cfg.update({"n_small": 8, "n_photos": 4} if args.quick else {"n_small": 64, "n_photos": 32})
    meta = _common.script_meta("benchmarks.thread_split", argv)
    result = run(cfg, log=lambda line: print(line, flush=True))
    _common.publish(render(result, meta), BLOCK, "thread_split", to_docs=not args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
