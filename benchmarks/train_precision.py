"""Training in bfloat16 autocast against float32: time per epoch, loss curve, accuracy.

    python -m benchmarks.train_precision            # -> docs/speed.md (generated:train-precision)
    python -m benchmarks.train_precision --quick    # tiny sizes -> build/train_precision.md

``mixed_precision="auto"`` trains under bfloat16 autocast where the CPU computes
bfloat16 natively (AVX-512 BF16 or AMX); ``mixed_precision=False`` trains in
float32. Each fit runs in its own fresh process, the two settings alternating
for ``--rounds`` rounds, on the same data and seed:

- text: ``TextClassifier`` (the packaged all-MiniLM-L6-v2, top 2 blocks
  trainable) on VADER sentences, binary sentiment (score > 0);
- images: ``ImageClassifier`` (the packaged EfficientNet-Lite0, top 6 blocks
  trainable) on Fashion-MNIST;
- few-shot: ``FewShotTextClassifier`` (the packaged all-MiniLM-L6-v2, every
  block trainable, its default pairs) on VADER sentences, binary sentiment.

Predictions run in float32 for both (``precision="float32"``), so the accuracy
column differs by what training did only. The table gives the median seconds per
epoch (``history_[i]["train_time"]``, the first epoch included), the whole
``fit``, the largest gap between the two training-loss curves, and the test
accuracy. On a CPU without native bfloat16 the "auto" row trains in float32 and
the table says so.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks import _common
from benchmarks import _markdown as md

ROOT = Path(__file__).resolve().parents[1]
BLOCK = "train-precision"
TEXT = {"trainable_blocks": 2, "learning_rate": 1e-3, "layer_decay": 0.5, "batch_size": 16}
IMAGE = {
    "trainable_blocks": 6,
    "learning_rate": 1e-3,
    "layer_decay": 0.7,
    "batch_size": 32,
    "image_size": 96,
}
FULL = {
    "text": (480, 500, 3),
    "image": (384, 400, 3),
    "fewshot": (64, 500, 3),
}  # train, test, epochs
QUICK = {"text": (48, 40, 2), "image": (32, 32, 2), "fewshot": (16, 40, 2)}
SETTINGS = {"float32": False, "auto": "auto"}


def _data(task: str, n_train: int, n_test: int):
    from sklearn.model_selection import train_test_split

    if task in ("text", "fewshot"):
        texts, labels, _ = _common.vader_arrays()
        _, first = np.unique(texts, return_index=True)
        keep = np.sort(first)
        X, y = texts[keep], labels[keep]
    else:
        from sktransfer.datasets import load_fashion_mnist

        bunch = load_fashion_mnist(subset="train", n_samples=n_train + n_test, random_state=0)
        X, y = bunch.images, bunch.target
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, train_size=n_train, test_size=n_test, stratify=y, random_state=0
    )
    return list(X_train), y_train, list(X_test), y_test


def worker(cfg: dict) -> dict:
    """One fit in this (fresh) process."""
    import torch

    torch.set_num_threads(cfg["threads"])
    from sktransfer import FewShotTextClassifier, ImageClassifier, TextClassifier
    from sktransfer.finetune._base import _amp_dtype

    n_train, n_test, epochs = cfg["sizes"]
    X, y, X_test, y_test = _data(cfg["task"], n_train, n_test)
    if cfg["task"] == "fewshot":
        estimator = FewShotTextClassifier(_common.text_model_folder())
    else:
        if cfg["task"] == "text":
            estimator = TextClassifier(_common.text_model_folder(), **TEXT)
        else:
            estimator = ImageClassifier(**IMAGE)
        estimator.set_params(early_stopping=False)
    estimator.set_params(
        epochs=epochs,
        mixed_precision=SETTINGS[cfg["setting"]],
        precision="float32",
        random_state=0,
        verbose=0,
    )
    amp = _amp_dtype(SETTINGS[cfg["setting"]], "cpu")
    with _common.quiet():
        start = time.perf_counter()
        estimator.fit(X, y)
        fit_s = time.perf_counter() - start
        accuracy = float(np.mean(estimator.predict(X_test) == np.asarray(y_test)))
    return {
        "trained_in": "bfloat16" if amp is not None else "float32",
        "fit_s": fit_s,
        "epoch_s": [h["train_time" if "train_time" in h else "time"] for h in estimator.history_],
        "loss": [h["train_loss"] for h in estimator.history_],
        "accuracy": accuracy,
    }


def run(sizes: dict, rounds: int, threads: int, log=print) -> dict:
    results = {task: {s: [] for s in SETTINGS} for task in sizes}
    for r in range(rounds):
        for task in sizes:
            order = list(SETTINGS) if r % 2 == 0 else list(SETTINGS)[::-1]
            for setting in order:
                cfg = {"task": task, "setting": setting, "sizes": sizes[task], "threads": threads}
                args = ["--worker", json.dumps(cfg)]
                out = _common.run_worker("benchmarks.train_precision", args)
                record = json.loads(out.strip().splitlines()[-1])
                results[task][setting].append(record)
                log(f"  round {r} {task:5s} {setting:7s} {json.dumps(record)}")
    return {"sizes": sizes, "rounds": rounds, "threads": threads, "results": results}


def render(result: dict, meta: dict) -> str:
    names = {
        "text": "`TextClassifier`, all-MiniLM-L6-v2, top 2 blocks, VADER",
        "image": "`ImageClassifier`, EfficientNet-Lite0 at 96 px, top 6 blocks, Fashion-MNIST",
        "fewshot": "`FewShotTextClassifier`, all-MiniLM-L6-v2, every block, VADER",
    }
    header = [
        "fit",
        "mixed_precision",
        "trained in",
        "s / epoch (median)",
        "fit s (median, min–max)",
        "speed-up",
        "loss curve: largest gap to float32",
        "test accuracy %",
    ]
    rows, verdicts = [], []
    for task, by_setting in result["results"].items():
        n_train, n_test, epochs = result["sizes"][task]
        base_fit = statistics.median(r["fit_s"] for r in by_setting["float32"])
        base_loss = np.asarray(by_setting["float32"][0]["loss"])
        for setting, records in by_setting.items():
            fits = [r["fit_s"] for r in records]
            epoch = statistics.median(s for r in records for s in r["epoch_s"])
            gap = max(float(np.max(np.abs(np.asarray(r["loss"]) - base_loss))) for r in records)
            rows.append(
                [
                    f"{names[task]}: {n_train} train, {n_test} test, {epochs} epochs",
                    f"`{SETTINGS[setting]!r}`",
                    records[0]["trained_in"],
                    f"{epoch:.2f}",
                    f"{statistics.median(fits):.1f} ({min(fits):.1f}–{max(fits):.1f})",
                    md.ratio(base_fit, statistics.median(fits)),
                    f"{gap:.4f} (first epoch {base_loss[0]:.3f})",
                    md.mean_sd([100 * r["accuracy"] for r in records]),
                ]
            )
        auto, exact = by_setting["auto"], by_setting["float32"]
        if auto[0]["trained_in"] == "float32":
            verdicts.append(
                f"{task}: this CPU has no native bfloat16, so `'auto'` trained in float32 "
                "(the two rows are the same computation)"
            )
            continue
        a, b = [r["fit_s"] for r in exact], [r["fit_s"] for r in auto]
        speedup = statistics.median(a) / statistics.median(b)
        word = md.outcome(b, a, "float32", larger="slower")  # fit times
        verdicts.append(f"{task}: bfloat16 training {speedup:.2f}× float32's speed, {word}")
    intro = (
        "Each fit in its own fresh process, the two settings alternating for "
        f"{result['rounds']} round(s), {result['threads']} torch threads, the same data and "
        "seed; predictions in float32 for both, so accuracy differs by training only. "
        "*speed-up*: float32's median fit time over the row's. The loss-curve gap is the "
        "largest absolute difference of a row's per-epoch training loss from float32's."
    )
    return "\n\n".join(
        [
            "### Training in bfloat16",
            intro,
            md.table(header, rows),
            "**Verdict.** " + "; ".join(verdicts) + ".",
            md.generated_note(meta),
        ]
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes -> build/")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--part", choices=["text", "image", "fewshot", "all"], default="all")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    sizes = dict(QUICK if args.quick else FULL)
    if args.part != "all":
        sizes = {args.part: sizes[args.part]}
    rounds = 1 if args.quick else args.rounds
    meta = _common.script_meta("benchmarks.train_precision", argv)
    result = run(sizes, rounds, args.threads, log=lambda line: print(line, flush=True))
    to_docs = not args.quick and args.part == "all"
    _common.publish(render(result, meta), BLOCK, "train_precision", to_docs=to_docs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
