"""Accuracy bar of ``TextEncoder(precision="bfloat16")`` against float32, on any CPU.

Checks the numerics only (cosine on N real VADER sentences, accuracy of
LogisticRegression on VADER binary sentiment); it forces bfloat16 even where
``fit`` would fall back to float32 because bfloat16 is emulated (slow), so run it
on a CPU without native bfloat16 to check numbers, not speed.

Usage::

    python benchmarks/check_precision.py --n-text 2000 --n-accuracy 4000
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> None:
    from sklearn.linear_model import LogisticRegression

    from sktransfer import TextEncoder, _precision
    from sktransfer._hub import packaged_text_model_dir
    from sktransfer.datasets import load_vader

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-text", type=int, default=2000)
    parser.add_argument("--n-accuracy", type=int, default=4000)
    parser.add_argument("--precision", default="bfloat16")
    args = parser.parse_args(argv)

    _precision.cpu_bfloat16_speedup = lambda: float("inf")  # numerics, not speed
    vader = load_vader()
    score = dict(zip(vader.data, vader.target, strict=True))
    data = list(score)
    perm = np.random.default_rng(0).permutation(len(data))
    texts = [data[i] for i in perm[: args.n_text]]
    acc_texts = [data[i] for i in perm[args.n_text : args.n_text + args.n_accuracy]]
    y = np.asarray([score[t] > 0 for t in acc_texts], dtype=int)
    n_train = int(0.75 * len(acc_texts))
    folder = str(packaged_text_model_dir("all-MiniLM-L6-v2"))
    exact = TextEncoder(folder, progress=False).fit()
    lossy = TextEncoder(folder, progress=False, precision=args.precision).fit()
    a, b = exact.transform(texts), lossy.transform(texts)
    cos = np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    print(
        f"{len(texts)} sentences, precision_={lossy.precision_}: "
        f"cosine to float32 mean {cos.mean():.6f} / min {cos.min():.6f}"
    )
    for name, enc in (("float32", exact), (lossy.precision_, lossy)):
        X = enc.transform(acc_texts)
        clf = LogisticRegression(max_iter=2000).fit(X[:n_train], y[:n_train])
        print(f"accuracy {name}: {100 * clf.score(X[n_train:], y[n_train:]):.2f} %")


if __name__ == "__main__":
    main()
