"""The transfer report on real data, and what it costs against the same work by hand.

Writes the generated sections of docs/transfer_report.md and its figures
(docs/images/transfer_report_*.png):

- ``transfer_report`` on VADER (binary sentiment, score > 0) in each of its 4
  domains (1,000 sentences drawn at random from each), and on Fashion-MNIST
  (500 images drawn from the test set), with the defaults:
  the packaged pretrained model + LogisticRegression, the from-scratch
  baselines, their combination, 2 x 5-fold stratified cross-validation;
  learning curves on one text domain and on Fashion-MNIST;
- the cost: the report's wall time (less its learning curves, ``timings_``)
  against the same models on the same splits written by hand (encode the data
  once, then fit the linear head on the stored features, the baselines, and the
  combination, reusing each split's TF-IDF matrix), each in its own fresh
  Python process, interleaved.

Usage::

    python -m benchmarks.transfer_report            # -> docs/transfer_report.md, docs/images/
    python -m benchmarks.transfer_report --quick    # tiny sizes -> build/, a smoke test

Needs ``pip install -e '.[offline,plot]'``, the VADER archive
(``load_vader(download=True)`` fetches it once) and Fashion-MNIST
(``sudo apt-get install dataset-fashion-mnist``); runs offline.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
import time
from pathlib import Path

from benchmarks import _common
from benchmarks import _markdown as md

COMMAND = "python -m benchmarks.transfer_report"
DOMAINS = ("tweets", "movie_reviews", "product_reviews", "nyt_editorials")
# Domains whose report also has learning curves (they multiply the fits).
CURVE_DOMAINS = ("product_reviews",)
TRAIN_SIZES = [50, 100, 200, 400]
FASHION_SIZES = [20, 50, 100, 200]
# Sizes chosen so that the whole run fits in half an hour on a 2-core machine shared
# with other work: a random sample of each VADER domain and of the Fashion-MNIST test set.
FULL = {"fashion_n": 500, "vader_n": 1000, "n_repeats": 2}
# The smoke test: the same steps on tiny samples, one repeat of the 5 folds.
QUICK = {"fashion_n": 60, "vader_n": 80, "n_repeats": 1}


# ------------------------------------------------------------------- data
def load(dataset: str, sizes: dict):
    import numpy as np

    if dataset == "fashion_mnist":
        from sktransfer.datasets import load_fashion_mnist

        bunch = load_fashion_mnist(
            subset="test", n_samples=sizes["fashion_n"], random_state=0, download=False
        )
        return bunch.data, np.asarray(bunch.target)
    from sktransfer.datasets import load_vader

    bunch = load_vader(domains=dataset, download=False)
    texts, y = np.asarray(bunch.data, dtype=object), (np.asarray(bunch.target) > 0).astype(int)
    if sizes["vader_n"] < len(texts):
        keep = np.sort(np.random.default_rng(0).choice(len(texts), sizes["vader_n"], replace=False))
        texts, y = texts[keep], y[keep]
    return list(texts), y


def _splits(y, n_repeats: int):
    import numpy as np
    from sklearn.model_selection import RepeatedStratifiedKFold

    splitter = RepeatedStratifiedKFold(n_splits=5, n_repeats=n_repeats, random_state=0)
    return list(splitter.split(np.zeros(len(y)), y))


def _preload(dataset: str) -> None:
    """Import the model libraries before any clock starts (both workers alike)."""
    if dataset == "fashion_mnist":
        import timm  # noqa: F401
    else:
        import sentence_transformers  # noqa: F401
    import sklearn.linear_model  # noqa: F401


# ---------------------------------------------------------------- workers
def worker_report(dataset: str, sizes: dict, curves: bool, figure: str | None) -> dict:
    from sktransfer import transfer_report

    X, y = load(dataset, sizes)
    _preload(dataset)
    train_sizes = None
    if curves:
        top = TRAIN_SIZES if dataset != "fashion_mnist" else FASHION_SIZES
        largest = min(len(tr) for tr, _ in _splits(y, sizes["n_repeats"]))
        train_sizes = [s for s in top if s < largest] + [largest]
    start = time.perf_counter()
    report = transfer_report(
        X, y, cv=5, n_repeats=sizes["n_repeats"], random_state=0, train_sizes=train_sizes
    )
    elapsed = time.perf_counter() - start
    if figure:
        import matplotlib

        matplotlib.use("Agg")
        fig = report.plot()
        fig.savefig(figure, dpi=100)
    return {
        "elapsed": elapsed,
        "markdown": report.to_markdown(),
        "verdict": report.verdict_,
        "timings": report.timings_,
        "n": report.n_samples_,
        "train_sizes": train_sizes,
        "results": json.loads(report.results_.reset_index().to_json(orient="records")),
    }


def worker_by_hand(dataset: str, sizes: dict) -> dict:
    """The same models on the same splits, written the efficient way by hand."""
    import numpy as np
    import scipy.sparse as sp
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression

    from sktransfer import ImageEncoder, TextEncoder
    from sktransfer.report._candidates import default_baseline_features, downscaled_pixels

    X, y = load(dataset, sizes)
    _preload(dataset)
    splits = _splits(y, sizes["n_repeats"])
    start = time.perf_counter()
    image = dataset == "fashion_mnist"
    encoder = (ImageEncoder if image else TextEncoder)(cache=None, progress=False).fit()
    Z = encoder.transform(X)
    t_encoded = time.perf_counter() - start

    def head():
        return LogisticRegression(max_iter=1000)

    scores: dict[str, list[float]] = {"pretrained": []}
    for tr, te in splits:
        scores["pretrained"].append(head().fit(Z[tr], y[tr]).score(Z[te], y[te]))
    features: dict[str, list] = {}
    if image:  # the pixel features depend on no split: computed once
        P = downscaled_pixels(X)
        features["pixels"] = [(P[tr], P[te]) for tr, te in splits]
    else:
        Xa = np.asarray(X, dtype=object)
        for name, vec in default_baseline_features("text"):
            features[name] = []
            for tr, te in splits:
                v = clone(vec)
                features[name].append((v.fit_transform(Xa[tr]), v.transform(Xa[te])))
    for name, per_split in features.items():
        scores[name] = [
            head().fit(a, y[tr]).score(b, y[te])
            for (a, b), (tr, te) in zip(per_split, splits, strict=True)
        ]
    best = max(features, key=lambda n: np.mean(scores[n]))
    stack = sp.hstack if not image else (lambda parts: np.hstack(parts))
    scores["combined"] = []
    for (a, b), (tr, te) in zip(features[best], splits, strict=True):
        A, B = stack([Z[tr], a]), stack([Z[te], b])
        if not image:
            A, B = A.tocsr(), B.tocsr()
        scores["combined"].append(head().fit(A, y[tr]).score(B, y[te]))
    elapsed = time.perf_counter() - start
    return {
        "elapsed": elapsed,
        "encode": t_encoded,
        "scores": {k: float(np.mean(v)) for k, v in scores.items()},
    }


# --------------------------------------------------------------- the run
def _run(args: list[str]) -> dict:
    out = _common.run_worker("benchmarks.transfer_report", ["--worker", *args])
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, output to build/")
    parser.add_argument(
        "--only", nargs="+", metavar="DATA", help="some data sets (with --quick): a smoke test"
    )
    parser.add_argument("--from-parts", metavar="JSON", help=argparse.SUPPRESS)
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        kind, size_json, *rest = args.worker
        sizes = json.loads(size_json)
        out = {}
        if kind == "report":
            folder, *names = rest
            for dataset in names:
                curves = dataset in CURVE_DOMAINS or dataset == "fashion_mnist"
                figure = str(Path(folder) / f"transfer_report_{dataset}.png") if curves else None
                out[dataset] = worker_report(dataset, sizes, curves, figure)
        else:
            for dataset in rest:
                out[dataset] = worker_by_hand(dataset, sizes)
        print(json.dumps(out))
        return 0

    if args.from_parts:  # rewrite the page from a finished run's kept results
        kept = json.loads(Path(args.from_parts).read_text())
        docs = _common.ROOT / (
            "build/docs" if kept["meta"]["command"].endswith("--quick") else "docs"
        )
        source = _common.ROOT / "docs" / "transfer_report.md"
        write_doc(docs / "transfer_report.md", kept["results"], kept["meta"], source)
        return 0
    sizes = QUICK if args.quick else FULL
    root = _common.ROOT
    docs = root / "docs" if not args.quick else root / "build" / "docs"
    images = docs / "images"
    images.mkdir(parents=True, exist_ok=True)
    from sktransfer.datasets import load_fashion_mnist, load_vader

    load_vader(download=False)
    load_fashion_mnist(subset="test", n_samples=10, random_state=0, download=False)
    from benchmarks.run import code_hash

    meta = {
        "command": COMMAND + (" --quick" if args.quick else ""),
        "code": code_hash(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        **_common.machine_info(),
    }
    results: dict = {}
    started = time.perf_counter()
    datasets = (*DOMAINS, "fashion_mnist")
    if args.only:
        if not args.quick:
            parser.error("--only is for smoke tests: use it with --quick")
        datasets = tuple(args.only)
    texts = [d for d in datasets if d != "fashion_mnist"]
    groups = [g for g in (texts, [d for d in datasets if d == "fashion_mnist"]) if g]
    for group in groups:
        # One fresh process runs the reports of a modality, then another the same work
        # by hand: each pays its imports and model load once, alike.
        reports = _run(["report", json.dumps(sizes), str(images), *group])
        hands = _run(["hand", json.dumps(sizes), *group])
        for dataset in group:
            rep, hand = reports[dataset], hands[dataset]
            # The cost comparison leaves out the learning curves (not done by hand).
            rep["elapsed_no_curves"] = rep["elapsed"] - rep["timings"]["learning_curves"]
            results[dataset] = {"report": rep, "hand": hand}
            print(
                f"{dataset}: report {rep['elapsed_no_curves']:.1f} s, by hand "
                f"{hand['elapsed']:.1f} s",
                file=sys.stderr,
            )
    meta["minutes"] = (time.perf_counter() - started) / 60
    print(f"the whole run: {meta['minutes']:.1f} min", file=sys.stderr)
    parts = (
        root / "build" / ("transfer_report_quick.json" if args.quick else "transfer_report.json")
    )
    parts.parent.mkdir(parents=True, exist_ok=True)
    parts.write_text(json.dumps({"meta": meta, "results": results}))
    write_doc(docs / "transfer_report.md", results, meta, root / "docs" / "transfer_report.md")
    return 0


def write_doc(path: Path, results: dict, meta: dict, source: Path) -> None:
    note = md.generated_note(meta)
    machine = (
        f"{meta['cpu']}, {meta['cores']} cores, shared with other work while it ran "
        f"(times are comparable within this run only)"
    )
    blocks = {}
    for dataset, res in results.items():
        rep = res["report"]
        body = [rep["markdown"].strip()]
        if dataset in CURVE_DOMAINS or dataset == "fashion_mnist":
            body.append(f"![the {dataset} report's plot](images/transfer_report_{dataset}.png)")
        body.append(note)
        blocks[f"report-{dataset}"] = "\n\n".join(body)
    rows = []
    for dataset, res in results.items():
        rep, hand = res["report"], res["hand"]
        rows.append(
            [
                dataset.replace("_", " "),
                f"{rep['n']:,}",
                f"{hand['encode']:.1f}",
                f"{hand['elapsed']:.1f}",
                f"{rep['elapsed_no_curves']:.1f}",
                f"{rep['elapsed_no_curves'] / hand['elapsed']:.2f}×",
            ]
        )
    header = [
        "data",
        "samples",
        "by hand: encode once (s)",
        "by hand: encode + every fit (s)",
        "transfer_report (s)",
        "report / by hand",
    ]
    worst = max(r["report"]["elapsed_no_curves"] / r["hand"]["elapsed"] for r in results.values())
    blocks["report-cost"] = "\n\n".join(
        [
            md.table(header, rows),
            f"Largest ratio: {worst:.2f}×: the bound of 1.5× is "
            f"{'met' if worst <= 1.5 else 'NOT met'}. Machine: {machine}.",
            note,
        ]
    )
    text = source.read_text() if source.exists() else _skeleton(blocks)
    for name, content in blocks.items():
        text = md.replace_block(text, name, content)
    path.write_text(text)
    print(f"wrote {path} ({shlex.quote(meta['command'])})", file=sys.stderr)


def _skeleton(blocks: dict) -> str:
    return "\n\n".join(f"<!-- generated:{n} -->\n<!-- /generated:{n} -->" for n in blocks) + "\n"


if __name__ == "__main__":
    sys.exit(main())
