"""Pretrained sentence embeddings vs TF-IDF on real sentiment data, cross-validated.

Encodes human-rated sentences (VADER, Hutto & Gilbert 2014) with the pretrained
all-MiniLM-L6-v2 model inside an ordinary scikit-learn Pipeline, and compares
5-fold cross-validated accuracy with a from-scratch TF-IDF baseline.

Run:  python examples/quickstart.py [--n-samples 1000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline

from sktransfer import TextEncoder
from sktransfer.datasets import load_vader


def main(n_samples: int, seed: int) -> None:
    vader = load_vader()
    texts = np.asarray(vader.data, dtype=object)
    positive = vader.target > 0  # binary sentiment: mean human rating above 0
    strata = np.char.add(np.asarray(vader.domain, dtype=str), positive.astype(str))
    X, _, y, _ = train_test_split(
        texts, positive, train_size=n_samples, stratify=strata, random_state=seed
    )
    X = list(X)
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    print(f"{len(X)} sentences from 4 domains, {y.mean():.0%} positive; 5-fold CV accuracy\n")

    candidates = {
        "TF-IDF + LogisticRegression (from scratch)": make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), min_df=2), LogisticRegression(max_iter=1000)
        ),
        "TextEncoder (all-MiniLM-L6-v2) + LogisticRegression": make_pipeline(
            TextEncoder(progress=False), LogisticRegression(max_iter=1000)
        ),
    }
    for name, pipeline in candidates.items():
        start = time.perf_counter()
        scores = cross_val_score(pipeline, X, y, cv=cv)
        seconds = time.perf_counter() - start
        print(f"{name:55s} {scores.mean():.3f} ± {scores.std():.3f}   ({seconds:.0f} s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.n_samples, args.seed)
