"""What glibc's allocator tuning does to a fine-tuning ``fit``, each in a fresh process.

sktransfer raises glibc's mmap and trim thresholds on the first ``transform``
of an encoder and the first ``fit`` of a fine-tuning estimator on a CPU
(sktransfer/_malloc.py). Here one small fit per estimator runs in a fresh
process with the tuning (the default) and without it
(``SKTRANSFER_TUNE_MALLOC=0``), the two settings alternating for ``repeats``
rounds; inference is in the image throughput table.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import _common
from benchmarks import _markdown as md

SETTINGS = {"default": {}, "off": {"SKTRANSFER_TUNE_MALLOC": "0"}}


def run(cfg: dict, workdir: Path) -> dict:
    results = {}
    for kind in ("image", "text"):
        runs = {setting: [] for setting in SETTINGS}
        for _ in range(cfg["repeats"]):
            for setting, env in SETTINGS.items():
                out = _common.run_worker(
                    "benchmarks._fit_worker", [kind, json.dumps(cfg)], extra_env=env
                )
                runs[setting].append(json.loads(out.strip().splitlines()[-1]))
        results[kind] = runs
    return {**cfg, "runs": results}


def _median(runs: list[dict], key: str) -> float:
    return _common.median([r[key] for r in runs])


def render(result: dict) -> str:
    labels = {
        "image": f"`ImageClassifier(image_size={result['image_size']}, trainable_blocks=6, "
        f"epochs=1, batch_size=32)`, {result['n_images']} Fashion-MNIST images",
        "text": f"`TextClassifier(trainable_blocks=2, epochs=1, batch_size=16)`, "
        f"{result['n_text']} VADER sentences",
    }
    cells, clauses = [], []
    for kind, runs in result["runs"].items():
        off, on = runs["off"], runs["default"]
        off_s, on_s = [r["fit_s"] for r in off], [r["fit_s"] for r in on]
        cells.append(
            [
                labels[kind],
                f"{_median(off, 'fit_s'):.1f} ({md.spread(off_s)})",
                f"{_median(on, 'fit_s'):.1f} ({md.spread(on_s)})",
                f"{_median(off, 'fit_s') / _median(on, 'fit_s'):.2f}×",
                f"{_median(off, 'page_faults') / 1e6:.2f} M → "
                f"{_median(on, 'page_faults') / 1e6:.2f} M",
                f"{_median(off, 'peak_rss_mib'):,.0f} → {_median(on, 'peak_rss_mib'):,.0f}",
            ]
        )
        outcome = md.compare(off_s, on_s)  # "a": the untuned fit took longer
        ratio = _median(off, "fit_s") / _median(on, "fit_s")
        name = "the image fit" if kind == "image" else "the text fit"
        if outcome == "no spread":
            clauses.append(f"{name}: {ratio:.2f}× (one round: no spread measured)")
        elif outcome == "a":
            clauses.append(f"the tuning makes {name} {ratio:.2f}× as fast")
        elif outcome == "b":
            clauses.append(f"the tuning makes {name} slower ({ratio:.2f}×)")
        else:
            clauses.append(f"{name} is a tie ({ratio:.2f}×, within the min–max of the rounds)")
    return md.section(
        "Allocator tuning and training",
        f"One `fit` (early stopping off, the pretrained weights' load included) in a fresh "
        f"process per run, glibc's default thresholds (`SKTRANSFER_TUNE_MALLOC=0`) against "
        f"sktransfer's default tuning, alternating for {result['repeats']} round(s): median "
        "seconds (min–max), minor page faults during the fit and peak RSS (medians).",
        md.table(
            ["fit", "untuned s", "tuned s", "speed-up", "page faults", "peak RSS MiB"],
            cells,
        ),
        "In this run " + "; ".join(clauses) + ".",
    )
