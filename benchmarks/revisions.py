"""Hot paths of two versions of the library, timed alternately in fresh processes.

    python -m benchmarks.revisions BEFORE_TREE AFTER_TREE [--rounds 3]

Each tree is a checkout of sktransfer (``git worktree add /tmp/before REV``).
For every round and every tree, in alternating order (A B, then B A, ...), three
fresh processes run with that tree first on ``PYTHONPATH`` and the tree as the
working directory, so each imports its own code and its own benchmark helpers:

- text throughput: ``TextEncoder(cache=None).transform`` on VADER sentences
  (``benchmarks._speed_worker ours``), sentences/s;
- image throughput: ``ImageEncoder(cache=None).transform`` on JPEG files, images/s;
- the fine-tuning loop: seconds per training epoch of ``TextClassifier`` and
  ``ImageClassifier`` (``benchmarks.bench_finetune.bench_loop``, warm-up epoch
  dropped);
- fine-tuner predictions: ``ImageClassifier.predict_proba`` on the JPEG files,
  images/s (the classifier fitted in the same process on 16 of them, head only,
  one epoch; the first prediction, which makes the inference copy, untimed).

Alternating the order spreads drift of the machine (other load, thermal state)
over both trees. The table gives the median and the min–max over all timed
repeats of each tree; a row is a tie when the two ranges overlap.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import _common

_LOOP_SCRIPT = """
import json, sys
from benchmarks import bench_finetune as b
rows = b.bench_loop({"n_loop": %d, "loop_epochs": %d}, 64)
json.dump({row[0].split(" ")[0]: row[5] for row in rows}, open(sys.argv[1], "w"))
"""

_PREDICT_SCRIPT = """
import json, sys, time
import numpy as np
from sktransfer import ImageClassifier
paths, repeats = json.load(open(sys.argv[1]))["inputs"], %d
clf = ImageClassifier(epochs=1, trainable_blocks=0, batch_size=16, random_state=0, verbose=0)
clf.fit(paths[:16], np.arange(16) %% 2)
clf.predict_proba(paths[:16])
seconds = []
for _ in range(repeats):
    start = time.perf_counter()
    clf.predict_proba(paths)
    seconds.append(time.perf_counter() - start)
json.dump([len(paths) / s for s in seconds], open(sys.argv[2], "w"))
"""

ENV: dict = {}


def _run(tree: Path, args: list[str]) -> None:
    env = _common.worker_env(ENV)
    env["PYTHONPATH"] = str(tree)
    proc = subprocess.run(
        [sys.executable, *args], cwd=tree, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{tree}: {' '.join(args)} failed:\n{proc.stderr[-3000:]}")


def _speed(tree: Path, config: Path, workdir: Path, tag: str) -> list[float]:
    report = workdir / f"{tag}.json"
    _run(tree, ["-m", "benchmarks._speed_worker", "ours", str(config), str(report)])
    n = len(json.loads(config.read_text())["inputs"])
    return [n / s for s in json.loads(report.read_text())["rows"]["ours"]["seconds"]]


def _loop(tree: Path, n: int, epochs: int, workdir: Path, tag: str) -> dict:
    report = workdir / f"{tag}-loop.json"
    _run(tree, ["-c", _LOOP_SCRIPT % (n, epochs), str(report)])
    return json.loads(report.read_text())


def _predict(tree: Path, config: Path, repeats: int, workdir: Path, tag: str) -> list[float]:
    report = workdir / f"{tag}-predict.json"
    _run(tree, ["-c", _PREDICT_SCRIPT % repeats, str(config), str(report)])
    return json.loads(report.read_text())


def _cell(values: list[float], digits: int) -> str:
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{mid:.{digits}f} ({low:.{digits}f}–{high:.{digits}f})"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n-text", type=int, default=256)
    parser.add_argument("--n-images", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-loop", type=int, default=256)
    parser.add_argument("--loop-epochs", type=int, default=3)
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set in every worker of both trees (e.g. SKTRANSFER_BFLOAT16=0 to keep float32)",
    )
    args = parser.parse_args(argv)
    ENV.update(item.split("=", 1) for item in args.env)
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    for name, tree in trees.items():
        rev = subprocess.run(
            ["git", "-C", str(tree), "log", "--oneline", "-1"], capture_output=True, text=True
        ).stdout.strip()
        print(f"{name}: {tree} at {rev}", flush=True)

    results = {name: {"text": [], "images": [], "predict": [], "loop": {}} for name in trees}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        texts, _, _ = _common.sample_sentences(args.n_text, seed=1)
        paths = _common.write_jpegs(workdir, args.n_images)
        configs = {}
        for kind, inputs in (("text", texts), ("images", paths)):
            configs[kind] = workdir / f"{kind}.json"
            configs[kind].write_text(
                json.dumps({"kind": kind, "inputs": inputs, "repeats": args.repeats})
            )
        for r in range(args.rounds):
            order = list(trees) if r % 2 == 0 else list(trees)[::-1]
            for name in order:
                tree, tag = trees[name], f"{name}-{r}"
                for kind in ("text", "images"):
                    rates = _speed(tree, configs[kind], workdir, f"{tag}-{kind}")
                    results[name][kind] += rates
                results[name]["predict"] += _predict(
                    tree, configs["images"], args.repeats, workdir, tag
                )
                loop = _loop(tree, args.n_loop, args.loop_epochs, workdir, tag)
                for key, seconds in loop.items():
                    results[name]["loop"].setdefault(key, []).extend(seconds)
                text = statistics.median(results[name]["text"][-args.repeats :])
                images = statistics.median(results[name]["images"][-args.repeats :])
                predict = statistics.median(results[name]["predict"][-args.repeats :])
                epochs = {k: round(statistics.median(v), 2) for k, v in loop.items()}
                print(
                    f"round {r + 1} {name}: text {text:.1f}/s, images {images:.1f}/s, "
                    f"ImageClassifier predictions {predict:.1f}/s, loop {epochs} s/epoch",
                    flush=True,
                )

    command = "python -m benchmarks.revisions " + " ".join(argv or sys.argv[1:])
    print(f"\n`{command}` ({time.perf_counter() - start:.0f} s, {os.cpu_count()} CPUs)\n")
    print("| measure | before | after | verdict |")
    print("|---|---|---|---|")
    rows = [
        ("text sentences/s (higher is better)", "text", 1, True),
        ("images/s (higher is better)", "images", 1, True),
        ("ImageClassifier predictions, images/s (higher is better)", "predict", 1, True),
    ]
    for label, key, digits, higher in rows:
        b, a = results["before"][key], results["after"][key]
        print(f"| {label} | {_cell(b, digits)} | {_cell(a, digits)} | {_verdict(b, a, higher)} |")
    for key in results["before"]["loop"]:
        b, a = results["before"]["loop"][key], results["after"]["loop"].get(key, [])
        if a:
            label = f"{key} s/epoch (lower is better)"
            print(f"| {label} | {_cell(b, 2)} | {_cell(a, 2)} | {_verdict(b, a, False)} |")


def _verdict(before: list[float], after: list[float], higher_is_better: bool) -> str:
    if max(before) >= min(after) and max(after) >= min(before):
        return "tie (ranges overlap)"
    better = statistics.median(after) > statistics.median(before)
    return "after faster" if better == higher_is_better else "after slower"


if __name__ == "__main__":
    main()
