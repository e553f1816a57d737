"""transfer_report: every row's name says which candidate it is."""

from __future__ import annotations

import numpy as np
from sklearn.preprocessing import FunctionTransformer

from sktransfer import transfer_report


def _length(texts):
    return np.array([[len(t), t.count(" ")] for t in texts], dtype=float)


def test_combined_rows_carry_the_names_given_to_the_candidates():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 40)
    texts = [("good " if v else "bad ") + "x" * int(rng.integers(1, 9)) for v in y]
    report = transfer_report(
        texts,
        y,
        candidates={"length": FunctionTransformer(_length), "length again": _length_encoder()},
        cv=2,
        n_repeats=1,
        random_state=0,
    )
    combined = report.results_[report.results_["kind"] == "pretrained + from scratch"]
    reference = report.reference_.removesuffix(" + LR")
    assert sorted(combined.index) == [
        f"length & {reference} + LR",
        f"length again & {reference} + LR",
    ]


def _length_encoder():
    return FunctionTransformer(_length)
