"""Domain adaptation on real shifts: does it beat training on the source alone?

Text: VADER's four domains (tweets, movie reviews, product reviews, NYT
editorials), binary sentiment (mean rating > 0), all 12 source -> target pairs,
``--per-domain`` sentences drawn from each domain. Images: Fashion-MNIST train
images (source) -> test images with reduced contrast and Gaussian noise
(target). For every pair :func:`sktransfer.adapt.compare_adaptation` fits
source-only, skada's CORAL, subspace alignment and OT mapping (exact EMD) on the
frozen features and on the body-adapted features (text: a contrastive pass on
the target sentences; images: AdaBN and TENT), the target oracle, and skada's
unsupervised scorers' picks. Target labels are read only to score.

Usage::

    python -m benchmarks.adaptation                # full sizes -> docs/adaptation.md
    python -m benchmarks.adaptation --quick        # tiny sizes -> build/adaptation.md

The generated part of docs/adaptation.md sits between ``<!-- generated:adaptation -->``
markers. Needs ``pip install -e '.[offline,adapt]'`` and the data sets
(``sktransfer.datasets.load_vader``; Fashion-MNIST from the Debian package
``dataset-fashion-mnist``).
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._markdown import table

ROOT = Path(__file__).resolve().parents[1]
MARK = "<!-- generated:adaptation -->"
DOMAINS = ("tweets", "movie_reviews", "product_reviews", "nyt_editorials")
CV = 2  # splits of skada's unsupervised scorers


def text_pairs(per_domain: int, cache: str, seed: int) -> list[dict]:
    from sktransfer import TextEncoder
    from sktransfer.adapt import compare_adaptation
    from sktransfer.datasets import load_vader

    vader = load_vader()
    rng = np.random.default_rng(seed)
    texts = np.asarray(vader.data, dtype=object)
    labels = (vader.target > 0).astype(int)
    picked = {}
    for domain in DOMAINS:
        rows = np.flatnonzero(vader.domain == domain)
        picked[domain] = np.sort(rng.choice(rows, min(per_domain, len(rows)), replace=False))
    results = []
    for source in DOMAINS:
        for target in DOMAINS:
            if source == target:
                continue
            rows = np.r_[picked[source], picked[target]]
            domains = np.r_[np.ones(len(picked[source]), int), -np.ones(len(picked[target]), int)]
            bodies = {
                "frozen": TextEncoder(cache=cache, progress=False),
                "contrastive": TextEncoder(
                    cache=cache, progress=False, adapt="contrastive", random_state=seed
                ),
            }
            start = time.perf_counter()
            result = compare_adaptation(
                list(texts[rows]), labels[rows], domains, bodies=bodies, cv=CV, random_state=seed
            )
            results.append(_summary(f"{source} → {target}", result, time.perf_counter() - start))
            print(results[-1]["pair"], f"{results[-1]['seconds']:.0f} s", flush=True)
    return results


def image_pairs(n: int, image_size: int, cache: str, seed: int) -> list[dict]:
    from sktransfer import ImageEncoder
    from sktransfer.adapt import compare_adaptation
    from sktransfer.datasets import load_fashion_mnist

    train = load_fashion_mnist(subset="train", n_samples=n, random_state=seed)
    test = load_fashion_mnist(subset="test", n_samples=n, random_state=seed)
    target = corrupt(np.asarray(test.images), seed)
    X = np.concatenate([np.asarray(train.images), target])
    y = np.r_[train.target, test.target]
    domains = np.r_[np.ones(len(train.target), int), -np.ones(len(test.target), int)]
    common = {"cache": cache, "progress": False, "image_size": image_size}
    bodies = {
        "frozen": ImageEncoder(**common),
        "AdaBN": ImageEncoder(**common, adapt="batchnorm"),
        "TENT": ImageEncoder(**common, adapt="tent", random_state=seed),
    }
    start = time.perf_counter()
    result = compare_adaptation(X, y, domains, bodies=bodies, cv=CV, random_state=seed)
    return [_summary("train → corrupted test", result, time.perf_counter() - start)]


def corrupt(images: np.ndarray, seed: int) -> np.ndarray:
    """Contrast reduced to 40 % around mid-grey, then Gaussian noise (sd 20 grey levels)."""
    rng = np.random.default_rng(seed + 1)
    shifted = (images.astype(np.float64) - 127.5) * 0.4 + 127.5
    shifted += rng.normal(0, 20, images.shape)
    return np.clip(shifted, 0, 255).astype(np.uint8)


def _summary(pair: str, result, seconds: float) -> dict:
    return {
        "pair": pair,
        "rows": result.rows,
        "oracle": result.oracle_accuracy,
        "selected": {k: list(v) for k, v in result.selected.items()},
        "scorers": result.scorers,
        "seconds": seconds,
    }


def _accuracy(pair: dict, body: str, method: str) -> float:
    for row in pair["rows"]:
        if row["body"] == body and row["method"] == method:
            return row["target_accuracy"]
    raise KeyError((body, method))


def render(pairs: list[dict], title: str, goal: float) -> str:
    """Rows: every (body, method), oracle; columns: mean over pairs, worst pair."""
    combos = [(row["body"], row["method"]) for row in pairs[0]["rows"]]
    source_only = [_accuracy(p, *combos[0]) for p in pairs]
    lines = []
    header = ["body / method", "mean target acc. (%)", "vs source only (points)", "worst pair (%)"]
    rows = []
    for body, method in combos:
        acc = np.array([_accuracy(p, body, method) for p in pairs])
        worst = int(np.argmin(acc))
        rows.append(
            [
                f"{body} / {method}",
                f"{100 * acc.mean():.1f}",
                f"{100 * (acc.mean() - np.mean(source_only)):+.1f}",
                f"{100 * acc[worst]:.1f} ({pairs[worst]['pair']})",
            ]
        )
    oracle = np.array([p["oracle"] for p in pairs])
    rows.append(
        [
            "target oracle (target labels, 5-fold CV)",
            f"{100 * oracle.mean():.1f}",
            f"{100 * (oracle.mean() - np.mean(source_only)):+.1f}",
            f"{100 * oracle.min():.1f}",
        ]
    )
    lines.append(f"### {title}\n\n" + table(header, rows))

    best_gain = max(
        np.mean([_accuracy(p, *c) for p in pairs]) - np.mean(source_only) for c in combos[1:]
    )
    sel_header = [
        "unsupervised scorer",
        "mean acc. of its pick (%)",
        "right pick",
        "worst loss vs source only (points)",
    ]
    sel_rows = []
    selection_ok = True
    for scorer in pairs[0]["scorers"]:
        picked = np.array([_accuracy(p, *p["selected"][scorer]) for p in pairs])
        best = np.array([max(r["target_accuracy"] for r in p["rows"]) for p in pairs])
        loss = np.array(source_only) - picked
        sel_rows.append(
            [
                scorer,
                f"{100 * picked.mean():.1f}",
                f"{int(np.sum(np.isclose(picked, best)))} of {len(pairs)}",
                f"{100 * loss.max():+.1f}",
            ]
        )
        selection_ok = selection_ok and loss.max() <= 0.01
    lines.append(table(sel_header, sel_rows))
    verdicts = [
        f"Best method vs source only: {100 * best_gain:+.1f} points mean "
        f"(goal ≥ +{100 * goal:.0f}): **{'met' if best_gain >= goal else 'missed'}**.",
        "Unsupervised selection never more than 1 point below source only on any pair: "
        f"**{'met' if selection_ok else 'missed'}** (for at least one scorer: "
        f"{'yes' if _any_scorer_ok(pairs, source_only) else 'no'}).",
    ]
    lines.append("\n".join(f"- {v}" for v in verdicts))
    return "\n\n".join(lines)


def _any_scorer_ok(pairs, source_only) -> bool:
    for scorer in pairs[0]["scorers"]:
        picked = np.array([_accuracy(p, *p["selected"][scorer]) for p in pairs])
        if (np.array(source_only) - picked).max() <= 0.01:
            return True
    return False


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, writes build/")
    parser.add_argument("--per-domain", type=int, default=250, help="VADER sentences per domain")
    parser.add_argument("--images", type=int, default=400, help="Fashion-MNIST images per side")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument(
        "--only",
        choices=("text", "images"),
        default=None,
        help="run one part and keep its result in build/adaptation-parts/ (see --render)",
    )
    parser.add_argument(
        "--render", action="store_true", help="write the page from the kept parts, run nothing"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.per_domain, args.images = 40, 40
    out = ROOT / "build" / ("adaptation-quick" if args.quick else "adaptation-parts")
    out.mkdir(parents=True, exist_ok=True)
    cache = tempfile.mkdtemp(prefix="sktransfer-adapt-bench-")
    command = shlex.join(["python", "-m", "benchmarks.adaptation", *(argv or sys.argv[1:])])
    if not args.render:
        wanted = ("text", "images") if args.only is None else (args.only,)
        for part in wanted:
            start = time.perf_counter()
            if part == "text":
                pairs = text_pairs(args.per_domain, cache, args.seed)
            else:
                pairs = image_pairs(args.images, args.image_size, cache, args.seed)
            record = {
                "command": command,
                "minutes": (time.perf_counter() - start) / 60,
                "machine": platform.machine(),
                "per_domain": args.per_domain,
                "images": args.images,
                "image_size": args.image_size,
                "pairs": pairs,
            }
            (out / f"{part}.json").write_text(json.dumps(record, indent=1))
        if args.only is not None:
            print(f"kept {out / (args.only + '.json')}")
            return 0
    parts = {
        name: json.loads((out / f"{name}.json").read_text())
        for name in ("text", "images")
        if (out / f"{name}.json").exists()
    }
    sections = []
    for name, part in parts.items():
        sections.append(
            f"Generated by `{part['command']}`"
            + (
                " then `python -m benchmarks.adaptation --render`"
                if "--only" in part["command"]
                else ""
            )
            + " "
            f"({part['minutes']:.0f} min on a shared 2-core {part['machine']} machine; "
            "accuracies do not depend on the load). Do not edit by hand."
        )
        if name == "text":
            title = (
                f"Text: VADER, 12 source → target pairs, {part['per_domain']} sentences drawn "
                "per domain, binary sentiment (mean rating > 0), all-MiniLM-L6-v2"
            )
        else:
            title = (
                f"Images: Fashion-MNIST, {part['images']} train images → {part['images']} test "
                "images with contrast × 0.4 and Gaussian noise (sd 20 grey levels), "
                f"EfficientNet-Lite0 at {part['image_size']} px"
            )
        sections.append(render(part["pairs"], title, goal=0.02))
    generated = "\n\n".join(sections)
    if args.quick:
        path = ROOT / "build" / "adaptation.md"
        path.write_text(generated + "\n")
    else:
        path = ROOT / "docs" / "adaptation.md"
        page = path.read_text()
        before, _, rest = page.partition(MARK)
        _, _, after = rest.partition(MARK)
        path.write_text(f"{before}{MARK}\n{generated}\n{MARK}{after}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
