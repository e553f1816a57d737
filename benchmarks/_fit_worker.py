"""Fit one fine-tuning estimator in this (fresh) process and report its cost.

    python -m benchmarks._fit_worker KIND CONFIG_JSON

KIND is ``image`` or ``text``. Prints one JSON line: seconds of ``fit`` (the
pretrained weights' load included, as a user pays it), minor page faults and
peak RSS of the process. The parent runs it with and without
``SKTRANSFER_TUNE_MALLOC=0`` to show what the allocator tuning does to training.
"""

from __future__ import annotations

import json
import resource
import sys
import time

from benchmarks import _common


def main(argv=None) -> None:
    kind, config = (argv or sys.argv[1:])[:2]
    cfg = json.loads(config)
    import torch  # noqa: F401  (imported before the clock starts, like the data)

    if kind == "image":
        from sktransfer import ImageClassifier
        from sktransfer.datasets import load_fashion_mnist

        data = load_fashion_mnist(subset="train", n_samples=cfg["n_images"], random_state=0)
        X, y = data.images, data.target
        model = ImageClassifier(
            image_size=cfg["image_size"],
            trainable_blocks=6,
            epochs=1,
            batch_size=32,
            early_stopping=False,
            random_state=0,
        )
    else:
        from sktransfer import TextClassifier

        texts, y, _ = _common.sample_sentences(cfg["n_text"], seed=3)
        X = list(texts)
        model = TextClassifier(
            _common.text_model_folder(),
            trainable_blocks=2,
            epochs=1,
            batch_size=16,
            early_stopping=False,
            random_state=0,
        )
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    with _common.quiet():
        model.fit(X, y)
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "fit_s": seconds,
                "page_faults": usage.ru_minflt - faults,
                "peak_rss_mib": usage.ru_maxrss / 1024,
            }
        )
    )


if __name__ == "__main__":
    main()
