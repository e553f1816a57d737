"""Fine-tuning on small training sets (100, 200, 400 texts) against frozen features + LR.

The question: with the estimator's defaults, does ``TextClassifier`` beat the
frozen ``TextEncoder`` + ``LogisticRegression`` on a few hundred labelled
texts, and which settings should be the defaults? Real data: VADER tweets
(``sktransfer.datasets.load_vader``, domain "tweets"), label ``score > 0``,
distinct sentences, the packaged all-MiniLM-L6-v2.

For every training size and seed, a stratified training sample of that size
and one test set of ``--n-test`` tweets (disjoint from it) are drawn with the
seed; every row is fitted on the same sample and scored on the same test set.
Rows (their settings are fixed in advance, never chosen on a test set):

- frozen ``TextEncoder`` + ``LogisticRegression`` (scikit-learn's defaults);
- ``TextClassifier`` with the settings in ``CONFIGS`` below: the estimator's
  defaults, and head-only training with a linear-probe learning rate.

torch runs one thread (``--threads``): on a machine shared with other work,
more threads than free cores slow every thread down far more than they help.

Seeds run in the outer loop (every size for seed 0, then seed 1, ...), and the
table so far is printed after each seed.

*warned* counts the fits that ended with an ``UnderfitWarning``. Accuracy does
not depend on the machine's load; the times do (the machine may be shared).

Usage::

    python benchmarks/small_data.py                 # sizes 100 200 400, seeds 0-2
    python benchmarks/small_data.py --quick         # 1 seed, size 40: checks the script
    python benchmarks/small_data.py --write-docs    # also writes docs/finetuning.md
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import _markdown as _md  # noqa: E402

FROZEN = "TextEncoder (frozen) + LogisticRegression"

# name -> TextClassifier parameters (random_state is the seed).
CONFIGS = {
    # The estimator's defaults (written out, so that the table says what ran).
    "defaults": {
        "trainable_blocks": 2,
        "learning_rate": 1e-3,
        "layer_decay": 0.5,
        "epochs": 5,
    },
    # A linear probe: the body never trains, so its features are computed once
    # and the epochs are cheap; 1e-2 is the linear-probe convention.
    "head only": {"trainable_blocks": 0, "learning_rate": 1e-2, "epochs": 20},
}


def _training_precision() -> str:
    from sktransfer.finetune._base import _amp_dtype

    return "bfloat16" if _amp_dtype("auto", "cpu") is not None else "float32"


def _data(domain: str):
    from sktransfer.datasets import load_vader

    vader = load_vader(domains=domain)
    texts = np.asarray([str(t) for t in vader.data], dtype=object)
    _, first = np.unique(texts, return_index=True)
    keep = np.sort(first)
    return texts[keep], (np.asarray(vader.target)[keep] > 0).astype(int)


def _split(texts, labels, n_train: int, n_test: int, seed: int):
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(texts))
    rest, test = train_test_split(idx, test_size=n_test, stratify=labels, random_state=seed)
    train, _ = train_test_split(rest, train_size=n_train, stratify=labels[rest], random_state=seed)
    return list(texts[train]), labels[train], list(texts[test]), labels[test]


def _fit_predict(name: str, X, y, X_test, seed: int):
    """Predictions on ``X_test`` and whether the fit warned that it learned nothing."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from sktransfer import TextClassifier, TextEncoder
    from sktransfer.exceptions import UnderfitWarning

    if name == FROZEN:
        model = make_pipeline(
            TextEncoder(progress=False, cache=None), LogisticRegression(max_iter=5000)
        )
        return model.fit(X, y).predict(X_test), False
    model = TextClassifier(**CONFIGS[name], random_state=seed, verbose=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnderfitWarning)
        model.fit(X, y)
    warned = any(issubclass(w.category, UnderfitWarning) for w in caught)
    return model.predict(X_test), warned


def run(sizes: list[int], seeds: list[int], n_test: int, domain: str, on_seed=None) -> dict:
    from sktransfer import TextEncoder

    texts, labels = _data(domain)
    TextEncoder(progress=False, cache=None).fit().transform(["warm-up"])  # imports, first load
    names = [FROZEN, *CONFIGS]
    results = {
        (n, name): {"accuracy": [], "seconds": [], "warned": 0} for n in sizes for name in names
    }
    done = []
    for seed in seeds:
        for n in sizes:
            X, y, X_test, y_test = _split(texts, labels, n, n_test, seed)
            majority = max(np.mean(y_test), 1 - np.mean(y_test))
            for name in names:
                start = time.perf_counter()
                predicted, warned = _fit_predict(name, X, y, X_test, seed)
                seconds = time.perf_counter() - start
                accuracy = 100 * float(np.mean(predicted == y_test))
                cell = results[(n, name)]
                cell["accuracy"].append(accuracy)
                cell["seconds"].append(seconds)
                cell["warned"] += int(warned)
                print(
                    f"n={n} seed={seed} {name}: {accuracy:.1f}% (majority {100 * majority:.1f}%)"
                    f"{' UnderfitWarning' if warned else ''}, {seconds:.1f} s",
                    flush=True,
                )
        done.append(seed)
        if on_seed is not None:
            on_seed(_result(sizes, done, n_test, domain, texts, labels, results))
    return _result(sizes, done, n_test, domain, texts, labels, results)


def _result(sizes, seeds, n_test, domain, texts, labels, results) -> dict:
    return {
        "sizes": sizes,
        "seeds": seeds,
        "n_test": n_test,
        "domain": domain,
        "n_available": len(texts),
        "positive_share": float(np.mean(labels)),
        "results": results,
    }


def render(result: dict, command: str) -> str:
    names = [FROZEN, *CONFIGS]
    rows = []
    for n in result["sizes"]:
        for name in names:
            cell = result["results"][(n, name)]
            settings = (
                "C=1" if name == FROZEN else ", ".join(f"{k}={v}" for k, v in CONFIGS[name].items())
            )
            rows.append(
                [
                    str(n),
                    name if name == FROZEN else f"TextClassifier, {name}",
                    settings,
                    _md.mean_sd(cell["accuracy"]),
                    f"{cell['warned']}/{len(result['seeds'])}",
                    f"{statistics.fmean(cell['seconds']):.1f}",
                ]
            )
    table = _md.table(
        ["n train", "model", "settings", "accuracy % (mean ± sd)", "warned", "fit + predict s"],
        rows,
    )
    verdicts = []
    for n in result["sizes"]:
        frozen = result["results"][(n, FROZEN)]["accuracy"]
        parts = [
            _md.versus(name, result["results"][(n, name)]["accuracy"], "frozen + LR", frozen, "pts")
            for name in CONFIGS
        ]
        verdicts.append(f"n={n}: " + "; ".join(parts))
    seeds = result["seeds"]
    intro = (
        f"VADER {result['domain']} ({result['n_available']:,} distinct sentences, "
        f"{100 * result['positive_share']:.0f}% positive), label `score > 0`; per seed a "
        f"stratified training sample of *n train* sentences and {result['n_test']} test "
        f"sentences disjoint from it; seeds {seeds[0]}–{seeds[-1]}; all-MiniLM-L6-v2 (the "
        f"packaged copy); training in {_training_precision()} (`mixed_precision='auto'` "
        "on this CPU). *warned*: fits that ended with an `UnderfitWarning`. Times are on a "
        "machine shared with other work (2 cores): read them as rough; the accuracies do "
        "not depend on the load."
    )
    from benchmarks import _common
    from benchmarks.run import code_hash

    info = _common.machine_info()
    note = (
        f"*Generated by `{command}` (code {code_hash()}, "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"{info['cpu']}: {info['cpu_features']}); do not edit by hand.*"
    )
    return "\n\n".join([intro, table, "**Verdicts.** " + ". ".join(verdicts) + ".", note])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 200, 400])
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1")
    parser.add_argument("--n-test", type=int, default=400)
    parser.add_argument("--domain", default="tweets")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--quick", action="store_true", help="size 40, 1 seed, 100 test texts")
    parser.add_argument("--write-docs", action="store_true", help="update docs/finetuning.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.seeds, args.n_test = [40], 1, 100
    command = " ".join(["python benchmarks/small_data.py", *(argv or sys.argv[1:])])
    import torch

    torch.set_num_threads(args.threads)

    def partial(result):
        print("\n" + render(result, command) + "\n", flush=True)

    result = run(args.sizes, list(range(args.seeds)), args.n_test, args.domain, partial)
    text = render(result, command)
    print("\n" + text)
    if args.write_docs:
        doc = ROOT / "docs" / "finetuning.md"
        doc.write_text(_md.replace_block(doc.read_text(), "small-data", text))
        print(f"\nwrote {doc}")


if __name__ == "__main__":
    main()
