"""How ``ImageEncoder`` splits the cores between JPEG decoding and the forward pass.

``ImageEncoder`` decodes in a thread pool of ``min(4, cores)`` threads while the
forward pass runs on torch's (or ONNX Runtime's) threads: one batch ahead of
the forward pass, or, where torch's forward pass runs on every core, each batch
between forward passes (``sktransfer._threads.decode_ahead``). This script
times every split of a small grid -- forward threads 1 or all cores, decoding
threads 1 to cores + 1, decoding ahead or between batches -- on small JPEG
files and on real photos of several megapixels (Debian's wallpaper packages;
see ``_common.large_photos``), for the default backend and ``backend="onnx"``.
Each backend runs in its own fresh process; the splits alternate within it for
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
    from sktransfer._adapters.image import ImageAdapter

    # Every decoding the encoders start goes through here: it records the
    # encoder's own choice of decoding ahead, or imposes the split's.
    forced: dict = {"ahead": None, "seen": []}
    original = ImageAdapter.decoded_batches

    def decoded_batches(self, *args, **kwargs):
        if forced["ahead"] is not None:
            kwargs["ahead"] = forced["ahead"]
        forced["seen"].append(kwargs.get("ahead", True))
        return original(self, *args, **kwargs)

    ImageAdapter.decoded_batches = decoded_batches
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
        default_ahead = forced["seen"][-1]  # the default encoder's own choice
        splits = list(itertools.product(sorted(encoders), range(1, cores + 2), (True, False)))
        rates: dict = {}
        for _ in range(cfg["rounds"]):
            for name, paths in inputs.items():
                for threads, workers, ahead in splits:
                    encoder = encoders[threads]
                    encoder._adapter.n_workers = workers
                    forced["ahead"] = ahead
                    start = time.perf_counter()
                    encoder.transform(paths)
                    seconds = time.perf_counter() - start
                    key = f"{name}/{threads}/{workers}/{int(ahead)}"
                    rates.setdefault(key, []).append(len(paths) / seconds)
        precision = str(encoders[cores].precision_)
        megapixels = _common.megapixels(inputs["photos"])
    return {
        "rates": rates,
        "default": [cores, default_workers, int(default_ahead)],
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


def _when(ahead) -> str:
    return "ahead" if ahead else "between batches"


def _split_name(split: tuple) -> str:
    threads, workers, ahead = split
    return f"{threads} forward / {workers} decoding threads, decoding {_when(ahead)}"


def render(result: dict, meta: dict) -> str:
    cfg = result["config"]
    header = [
        "backend",
        "forward threads",
        "decoding threads",
        "decoding",
        "small JPEGs img/s",
        "photos img/s",
    ]
    rows, verdicts = [], []
    for backend, label in BACKENDS.items():
        res = result["results"][backend]
        rates = res["rates"]
        default = tuple(res["default"])
        splits = sorted({tuple(int(v) for v in key.split("/")[1:]) for key in rates})

        def values(name, split, rates=rates):
            return rates[f"{name}/{split[0]}/{split[1]}/{split[2]}"]

        for split in splits:
            threads, workers, ahead = split
            cells = [
                f"{label}, ran in {res['precision']}",
                str(threads),
                str(workers),
                _when(ahead),
            ]
            if split == default:
                cells[3] += " (default)"
            for name in ("small", "photos"):
                got = values(name, split)
                cells.append(f"{np.median(got):.1f} ({md.spread(got)})")
            rows.append(cells)
        for name, what in (("small", "small JPEGs"), ("photos", "photos")):
            mine = values(name, default)
            best = max(splits, key=lambda s, name=name: np.median(values(name, s)))
            top = values(name, best)
            outcome_kind = md.compare(mine, top)
            if best == default:
                outcome = "the default split is the fastest"
            elif outcome_kind == "no spread":
                outcome = (
                    f"{_split_name(best)} had the highest rate (one round: no spread measured)"
                )
            elif outcome_kind == "tie":
                outcome = (
                    f"the default split ties with the fastest ({_split_name(best)}; "
                    "min–max ranges overlap)"
                )
            else:
                outcome = (
                    f"the default split is slower than {_split_name(best)} "
                    f"({np.median(mine):.1f} vs {np.median(top):.1f} images/s)"
                )
            other = (*default[:2], 1 - default[2])  # the default split, decoding the other way
            theirs = values(name, other)
            outcome += (
                f"; at the default split, decoding {_when(default[2])} "
                f"is {md.outcome(mine, theirs, f'decoding {_when(other[2])}')} "
                f"({np.median(mine):.1f} vs {np.median(theirs):.1f} images/s)"
            )
            verdicts.append(f"{backend}, {what}: {outcome}")
    small, photos = result["results"]["torch"]["n"].values()
    low, high = result["results"]["torch"]["megapixels"]
    return "\n\n".join(
        [
            "### Decoding and the forward pass: the split of the cores",
            f"{small} small JPEG files (220–427 px) and {photos} photos of {low:.1f}–{high:.1f} "
            "megapixels, EfficientNet-Lite0 at 224 px, batch 32, `cache=None`; forward threads "
            "are `n_threads`, decoding threads the encoder's decoding pool, which decodes the "
            "next batch while the forward pass runs (*ahead*) or each batch when the forward "
            "pass is done with the one before (*between batches*). Each backend in "
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
    cfg.update({"n_small": 8, "n_photos": 4} if args.quick else {"n_small": 256, "n_photos": 32})
    meta = _common.script_meta("benchmarks.thread_split", argv)
    result = run(cfg, log=lambda line: print(line, flush=True))
    _common.publish(render(result, meta), BLOCK, "thread_split", to_docs=not args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
