"""Few-shot predictions at ``precision="auto"`` against ``"float32"``: accuracy and time.

    python -m benchmarks.fewshot_precision          # -> docs/fewshot.md
    python -m benchmarks.fewshot_precision --quick  # tiny sizes -> build/fewshot_precision.md

``FewShotTextClassifier(precision=...)`` is the precision of the embeddings its
head is fitted on and predicts from; ``"auto"`` (the default) runs them in
bfloat16 where the CPU computes it natively and the tuned body passes the
numerics probe. For each task of ``benchmarks.fewshot`` (VADER) and each seed,
both settings are fitted in one process on the same N labelled sentences per
class with the same seed; training is the same for both (``mixed_precision``
left at its default), so the accuracy on the fixed test set differs by the
embeddings' precision only. ``predict`` on the test set is timed for both,
alternating, ``--repeats`` times. On a CPU without native bfloat16 ``"auto"``
runs float32 and the table says so.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from benchmarks import _common
from benchmarks import _markdown as md
from benchmarks.fewshot import TASKS, task_split

BLOCK = "fewshot-precision"
SETTINGS = ("float32", "auto")
FULL = {"tasks": list(TASKS), "n_per_class": 8, "seeds": 3, "n_test": 1000, "repeats": 3}
QUICK = {"tasks": ["tweets"], "n_per_class": 4, "seeds": 1, "n_test": 64, "repeats": 1}
BAR = 0.3  # accuracy points: the bar the int8 variants are held to (docs/speed.md)


def run(sizes: dict, log=print) -> dict:
    """Fit both settings per task and seed; accuracy, resolved precision and predict times."""
    import torch

    from sktransfer import FewShotTextClassifier

    torch.set_num_threads(2)
    cells = []
    for task in sizes["tasks"]:
        for seed in range(sizes["seeds"]):
            X, y, X_test, y_test = task_split(task, sizes["n_per_class"], seed, sizes["n_test"])
            fitted = {
                setting: FewShotTextClassifier(precision=setting, random_state=seed, verbose=0).fit(
                    X, y
                )
                for setting in SETTINGS
            }
            seconds: dict = {setting: [] for setting in SETTINGS}
            accuracy = {}
            for _ in range(sizes["repeats"]):
                for setting, clf in fitted.items():
                    start = time.perf_counter()
                    predicted = clf.predict(X_test)
                    seconds[setting].append(time.perf_counter() - start)
                    accuracy[setting] = 100 * float(np.mean(predicted == np.asarray(y_test)))
            cell = {
                "task": task,
                "seed": seed,
                "accuracy": accuracy,
                "seconds": seconds,
                "precision": str(fitted["auto"].precision_),
                "reason": fitted["auto"].precision_.reason,
            }
            log(json.dumps(cell))
            cells.append(cell)
    return {"sizes": sizes, "cells": cells}


def render(result: dict, meta: dict) -> str:
    sizes, cells = result["sizes"], result["cells"]
    rows = []
    gaps: list[float] = []
    speedups: list[float] = []
    ran_in = sorted({c["precision"] for c in cells})
    for task in sizes["tasks"]:
        mine = [c for c in cells if c["task"] == task]
        if not mine:
            continue
        acc = {s: [c["accuracy"][s] for c in mine] for s in SETTINGS}
        gap = [c["accuracy"]["auto"] - c["accuracy"]["float32"] for c in mine]
        times = {s: statistics.median(t for c in mine for t in c["seconds"][s]) for s in SETTINGS}
        gaps += gap
        speedups.append(times["float32"] / times["auto"])
        rows.append(
            [
                task,
                ", ".join(sorted({c["precision"] for c in mine})),
                md.mean_sd(acc["float32"]),
                md.mean_sd(acc["auto"]),
                f"{max(gap, key=abs):+.1f}",
                f"{times['float32']:.2f}",
                f"{times['auto']:.2f}",
                f"{times['float32'] / times['auto']:.2f}×",
            ]
        )
    header = [
        "task",
        "'auto' ran in",
        "accuracy % float32",
        "accuracy % 'auto'",
        "largest gap (points)",
        "predict s float32",
        "predict s 'auto'",
        "speed-up",
    ]
    intro = (
        f"VADER, {len(sizes['tasks'])} task(s), {sizes['n_per_class']} labelled sentences per "
        f"class, {sizes['seeds']} seed(s), {sizes['n_test']} test sentences per task; "
        "`FewShotTextClassifier(precision=...)` with every other setting at its default, "
        "both settings fitted in one process on the same sentences and seed (the same "
        "training), so accuracy differs by the embeddings' precision only. Accuracy mean ± sd "
        "over the seeds; *largest gap*: 'auto' minus float32, the largest over the seeds; "
        f"*predict s*: `predict` on the test set, median of {sizes['repeats']} alternating "
        "repeats per seed (2 torch threads)."
    )
    largest = max(gaps, key=abs)
    if ran_in == ["float32"]:
        verdict = (
            "This CPU has no native bfloat16 (or the probe disagreed), so `'auto'` ran in "
            "float32: the rows compare float32 with itself."
        )
    else:
        within = "within" if abs(largest) <= BAR else "outside"
        verdict = (
            f"Over {len(gaps)} fits, 'auto' (ran in {', '.join(ran_in)}) minus float32: "
            f"mean {statistics.mean(gaps):+.2f} points, largest {largest:+.1f} ({within} the "
            f"{BAR}-point bar); `predict` {statistics.median(speedups):.2f}× float32's speed "
            "(median over the tasks)."
        )
    body = md.table(header, rows)
    return "\n".join(
        [
            "### Predictions in bfloat16: `precision='auto'` against `'float32'`",
            "",
            intro,
            "",
            body,
            "",
            f"**Verdict.** {verdict}",
            "",
            md.generated_note(meta),
        ]
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes -> build/")
    args = parser.parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    meta = _common.script_meta("benchmarks.fewshot_precision", argv)
    result = run(sizes, log=lambda line: print(line, flush=True))
    _common.publish(
        render(result, meta),
        BLOCK,
        "fewshot_precision",
        to_docs=not args.quick,
        document="fewshot.md",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
