"""Fit one few-shot system on one labelled sample in this (fresh) process and score it.

    python -m benchmarks._fewshot_worker CONFIG_JSON

CONFIG_JSON names the ``system`` (``frozen``, ``textclassifier``, ``setfit``,
``ours``), the ``task``, ``n_per_class``, ``seed``, ``n_test``, ``threads`` and
the system's ``params``. Prints one JSON line: test accuracy, seconds of
training (from the pretrained weights on disk to a fitted classifier, as a
user pays it), seconds of prediction and the peak RSS of the process.

The ``pairs`` mode (``{"mode": "pairs", ...}``) times pair generation for many
classes instead: ours (:func:`sktransfer._pairs.plan_pair_batches`) or
SetFit's ``ContrastiveDataset``, with the peak RSS.
"""

from __future__ import annotations

import json
import resource
import sys
import time

import numpy as np

from benchmarks import _common


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fit_ours(X, y, params):
    from sktransfer import FewShotTextClassifier

    model = FewShotTextClassifier(_common.text_model_folder(), verbose=0, **params)
    return model.fit(X, y), model.predict


def fit_frozen(X, y, params):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from sktransfer import TextEncoder

    encoder = TextEncoder(_common.text_model_folder(), progress=False, cache=None)
    model = make_pipeline(encoder, LogisticRegression(max_iter=1000, **params))
    return model.fit(X, y), model.predict


def fit_textclassifier(X, y, params):
    from sktransfer import TextClassifier

    model = TextClassifier(_common.text_model_folder(), verbose=0, **params)
    return model.fit(X, y), model.predict


def fit_setfit(X, y, params):
    """SetFit's own Trainer on the same body folder, its few-shot settings in ``params``."""
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    labels = sorted(set(y))
    codes = [labels.index(v) for v in y]
    model = SetFitModel.from_pretrained(_common.text_model_folder(), device="cpu")
    args = TrainingArguments(**params, report_to="none", show_progress_bar=False)
    trainer = Trainer(
        model=model, args=args, train_dataset=Dataset.from_dict({"text": X, "label": codes})
    )
    trainer.train()

    def predict(texts):
        return np.asarray(labels)[np.asarray(model.predict(texts, show_progress_bar=False))]

    return model, predict


SYSTEMS = {
    "frozen": fit_frozen,
    "textclassifier": fit_textclassifier,
    "setfit": fit_setfit,
    "ours": fit_ours,
}


def run_fit(cfg: dict) -> dict:
    from benchmarks.fewshot import task_split

    X, y, X_test, y_test = task_split(cfg["task"], cfg["n_per_class"], cfg["seed"], cfg["n_test"])
    start = time.perf_counter()
    with _common.quiet():
        _, predict = SYSTEMS[cfg["system"]](X, y, cfg.get("params", {}))
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    with _common.quiet():
        predicted = np.asarray(predict(X_test))
    predict_s = time.perf_counter() - start
    return {
        "accuracy": float(np.mean(predicted == np.asarray(y_test))),
        "fit_s": fit_s,
        "predict_s": predict_s,
        "peak_rss_mib": _peak_rss_mib(),
    }


def run_pairs(cfg: dict) -> dict:
    """Pair generation for ``n_classes`` classes of ``per_class`` real sentences each."""
    from benchmarks.fewshot import many_class_sentences

    X, y = many_class_sentences(cfg["n_classes"], cfg["per_class"])
    # Imported before the memory baseline: the libraries are not the pairs.
    from setfit.sampler import ContrastiveDataset

    from sktransfer._pairs import plan_pair_batches

    before = _peak_rss_mib()
    start = time.perf_counter()
    if cfg["system"] == "setfit":
        dataset = ContrastiveDataset(X, list(y), multilabel=False, num_iterations=cfg["iterations"])
        n_pairs = sum(1 for _ in dataset)
    else:
        codes = np.unique(y, return_inverse=True)[1]
        plan = plan_pair_batches(
            codes, 2 * cfg["iterations"] * len(X), cfg["batch_size"], np.random.default_rng(0)
        )
        n_pairs = sum(batch.n_pairs for batch in plan)
    seconds = time.perf_counter() - start
    return {
        "n_pairs": int(n_pairs),
        "seconds": seconds,
        "peak_rss_mib": _peak_rss_mib(),
        "rss_before_mib": before,
    }


def main(argv=None) -> None:
    cfg = json.loads((argv or sys.argv[1:])[0])
    import torch

    torch.set_num_threads(int(cfg.get("threads", 2)))
    result = run_pairs(cfg) if cfg.get("mode") == "pairs" else run_fit(cfg)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
