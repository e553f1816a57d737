"""Accuracy bar of ``TextEncoder(precision="bfloat16")`` against float32, on any CPU.

Checks the numerics only (cosine on N real VADER sentences, accuracy of
LogisticRegression on VADER binary sentiment); it forces bfloat16 even where
``fit`` would fall back to float32 because bfloat16 is emulated (slow), so run it
on a CPU without native bfloat16 to check numbers, not speed. It is the
``precision`` part of the suite (``python -m benchmarks --only precision``),
which writes its table into docs/speed.md; run alone it prints the figures.

Usage::

    python benchmarks/check_precision.py --n-text 2000 --n-accuracy 2000
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _markdown as md  # noqa: E402


def run(cfg: dict, precision: str = "bfloat16") -> dict:
    """Cosine to float32 and downstream accuracy of ``precision`` (forced, even if emulated)."""
    from sklearn.linear_model import LogisticRegression

    from sktransfer import TextEncoder, _precision
    from sktransfer._hub import packaged_text_model_dir
    from sktransfer.datasets import load_vader

    _precision.cpu_bfloat16_speedup = lambda: float("inf")  # numerics, not speed
    vader = load_vader()
    score = dict(zip(vader.data, vader.target, strict=True))
    data = list(score)
    perm = np.random.default_rng(0).permutation(len(data))
    n_text, n_accuracy = cfg["n_text"], cfg["n_accuracy"]
    texts = [data[i] for i in perm[:n_text]]
    acc_texts = [data[i] for i in perm[n_text : n_text + n_accuracy]]
    y = np.asarray([score[t] > 0 for t in acc_texts], dtype=int)
    n_train = int(0.75 * len(acc_texts))
    folder = str(packaged_text_model_dir("all-MiniLM-L6-v2"))
    exact = TextEncoder(folder, progress=False, cache=None).fit()
    lossy = TextEncoder(folder, progress=False, cache=None, precision=precision).fit()
    a, b = exact.transform(texts), lossy.transform(texts)
    cos = np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    accuracy = {}
    if n_accuracy:
        for name, enc in (("float32", exact), (lossy.precision_, lossy)):
            X = enc.transform(acc_texts)
            clf = LogisticRegression(max_iter=2000).fit(X[:n_train], y[:n_train])
            accuracy[name] = 100 * clf.score(X[n_train:], y[n_train:])
    return {
        "n_text": len(texts),
        "n_train": n_train,
        "n_test": len(acc_texts) - n_train,
        "precision": lossy.precision_,
        "cosine": [float(cos.mean()), float(cos.min())],
        "accuracy": accuracy,
    }


def render(result: dict) -> str:
    p = result["precision"]
    acc = result["accuracy"]
    cells = [
        ["`TextEncoder` float32", "1 / 1", md.number(acc.get("float32"), 2)],
        [
            f"`TextEncoder` {p} (autocast)",
            f"{result['cosine'][0]:.6f} / {result['cosine'][1]:.6f}",
            md.number(acc.get(p), 2),
        ],
    ]
    mean, low = result["cosine"]
    gap = abs(acc.get(p, 0.0) - acc.get("float32", 0.0)) if acc else None
    meets = mean >= 0.999 and low >= 0.99 and (gap is None or gap <= 0.3)
    verdict = (
        f"{p} {'meets' if meets else 'fails'} the accuracy bar (cosine mean ≥ 0.999 and "
        "min ≥ 0.99, accuracy within 0.3 points of float32)"
        + ("" if gap is None else f": {gap:.2f} points apart")
        + "."
    )
    return md.section(
        "bfloat16 numerics",
        f"`TextEncoder(precision='{p}')` forced on this CPU (numbers, not speed): cosine to "
        f"float32 on {result['n_text']:,} VADER sentences; accuracy of "
        f"`LogisticRegression` on VADER binary sentiment (score > 0), {result['n_train']:,} "
        f"training / {result['n_test']:,} test sentences.",
        md.table(["variant", "cosine to float32 (mean / min)", "accuracy %"], cells),
        verdict,
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-text", type=int, default=2000)
    parser.add_argument("--n-accuracy", type=int, default=2000)
    parser.add_argument("--precision", default="bfloat16")
    args = parser.parse_args(argv)
    result = run({"n_text": args.n_text, "n_accuracy": args.n_accuracy}, args.precision)
    print(render(result))


if __name__ == "__main__":
    main()
