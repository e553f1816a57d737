"""Few-shot text classification: ours against SetFit, frozen features and cross-entropy.

Tasks (VADER): binary sentiment (score > 0) within each of the 4 domains, and
the 4-domain classification (which source a sentence comes from). For each
task one fixed, stratified test set; for each N (labelled examples per class)
and seed, N training sentences per class drawn from the rest. Every system
trains on the same sentences, from the same packaged all-MiniLM-L6-v2 weights,
with the same number of torch threads, each fit in its own fresh process; the
systems of one cell run one after the other (interleaved), so a busy machine
slows them alike.

Rows: frozen ``TextEncoder`` + ``LogisticRegression``; ``TextClassifier``
(cross-entropy fine-tuning); SetFit (its own Trainer, 1 epoch, 20 iterations,
batch 16: the few-shot settings of its paper); ``FewShotTextClassifier``.

A second table times pair generation with 1,000+ classes (a synthetic label
split of real sentences): SetFit's ``ContrastiveDataset`` (which lists every
pair of sentences) against ours, with the peak memory of the process.

    python -m benchmarks.fewshot                # the sizes of FULL -> docs/fewshot.md
    python -m benchmarks.fewshot --quick        # a smoke test -> build/fewshot.md
    python -m benchmarks.fewshot --sizes JSON   # other sizes -> build/fewshot.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import statistics
import sys
import time
from functools import cache
from pathlib import Path

import numpy as np

from benchmarks import _common
from benchmarks import _markdown as md

TASKS = ("tweets", "movie_reviews", "product_reviews", "nyt_editorials", "domain")
SYSTEMS = ("frozen", "textclassifier", "setfit", "ours")
LABELS = {
    "frozen": "TextEncoder + LogisticRegression (frozen)",
    "textclassifier": "TextClassifier (cross-entropy fine-tuning)",
    "setfit": "SetFit (Trainer, 1 epoch, 20 iterations)",
    "ours": "FewShotTextClassifier",
}
# The settings of each system (the same for every cell).
PARAMS = {
    "frozen": {},
    "textclassifier": {"trainable_blocks": 2, "epochs": 10, "learning_rate": 1e-3},
    "setfit": {"num_epochs": 1, "num_iterations": 20, "batch_size": 16},
    "ours": {},
}
FULL = {
    "tasks": list(TASKS),
    "n_per_class": [8, 16, 64],
    "seeds": 5,
    "n_test": 1000,
    "threads": 2,
    "systems": list(SYSTEMS),
    "together": False,
    "pairs": {"n_classes": [1000], "per_class": 2, "iterations": 20, "batch_size": 16},
}
QUICK = {
    "tasks": ["tweets", "domain"],
    "n_per_class": [4],
    "seeds": 1,
    "n_test": 40,
    "threads": 2,
    "systems": list(SYSTEMS),
    "together": True,
    "pairs": {"n_classes": [50], "per_class": 2, "iterations": 2, "batch_size": 16},
}
TEST_SEED = 12345


# -------------------------------------------------------------------- data
@cache
def _vader():
    texts, labels, domains = _common.vader_arrays()
    _, first = np.unique(texts, return_index=True)
    keep = np.sort(first)  # distinct sentences only: no test sentence in a training sample
    return texts[keep], labels[keep], domains[keep]


def task_data(task: str):
    """Sentences and labels of a task (a domain's sentiment, or the domain itself)."""
    texts, labels, domains = _vader()
    if task == "domain":
        return texts, domains
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose from {TASKS}")
    mask = domains == task
    return texts[mask], np.where(labels[mask] == 1, "positive", "negative")


def task_split(task: str, n_per_class: int, seed: int, n_test: int):
    """``(X_train, y_train, X_test, y_test)``: a fixed test set, ``n_per_class`` per class."""
    from sklearn.model_selection import train_test_split

    texts, y = task_data(task)
    idx = np.arange(len(texts))
    rest, test = train_test_split(idx, test_size=n_test, stratify=y, random_state=TEST_SEED)
    rng = np.random.default_rng(seed)
    train = np.concatenate(
        [rng.choice(rest[y[rest] == c], n_per_class, replace=False) for c in np.unique(y)]
    )
    train = train[rng.permutation(len(train))]
    return list(texts[train]), list(y[train]), list(texts[np.sort(test)]), list(y[np.sort(test)])


def many_class_sentences(n_classes: int, per_class: int):
    """``n_classes * per_class`` distinct real sentences with a synthetic label each."""
    texts, _, _ = _vader()
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(texts), n_classes * per_class, replace=False)
    return list(texts[chosen]), np.repeat(np.arange(n_classes), per_class)


# --------------------------------------------------------------------- run
def _worker(cfg: dict) -> dict:
    out = _common.run_worker("benchmarks._fewshot_worker", [json.dumps(cfg)])
    return json.loads(out.strip().splitlines()[-1])


def _workers_together(jobs: list[dict]) -> list[dict]:
    """Run the jobs at the same time, each in its own fresh process; their results in order."""
    import subprocess

    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "benchmarks._fewshot_worker", json.dumps(job)],
            cwd=_common.ROOT,
            env=_common.worker_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for job in jobs
    ]
    results = []
    for job, proc in zip(jobs, procs, strict=True):
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"{job} failed:\n{err[-3000:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def run(cfg: dict, log=print, on_cell=None) -> dict:
    """Every cell: the systems side by side (``together``) or one after the other.

    Either way each fit has its own fresh process, and the systems of a cell run
    under the same load: at the same time, or one after the other in an order
    that rotates with the seed.
    """
    pairs = []
    p = cfg["pairs"]
    for n_classes in p["n_classes"]:
        for system in ("setfit", "ours"):
            job = {"mode": "pairs", "system": system, **p, "n_classes": n_classes}
            r = _worker(job)
            pairs.append({"system": system, "n_classes": n_classes, **r})
            log(f"  pairs {system:6s} classes={n_classes} {r}")
    cells = []
    # Seed after seed: a run stopped early still covers every task and N.
    for seed in range(cfg["seeds"]):
        for task in cfg["tasks"]:
            for n in cfg["n_per_class"]:
                systems = list(cfg["systems"])
                k = seed % len(systems)
                systems = systems[k:] + systems[:k]
                jobs = [
                    {
                        "system": system,
                        "task": task,
                        "n_per_class": n,
                        "seed": seed,
                        "n_test": cfg["n_test"],
                        "threads": cfg["threads"],
                        "params": PARAMS[system],
                    }
                    for system in systems
                ]
                if cfg.get("together"):
                    results = _workers_together(jobs)
                else:
                    results = [_worker(job) for job in jobs]
                cell = {"task": task, "n_per_class": n, "seed": seed, "results": {}}
                for system, r in zip(systems, results, strict=True):
                    cell["results"][system] = r
                    log(
                        f"  {task:16s} N={n:3d} seed={seed} {system:15s} "
                        f"acc={r['accuracy']:.3f} fit={r['fit_s']:.1f}s"
                    )
                cells.append(cell)
                if on_cell is not None:
                    on_cell({"cells": cells, "pairs": pairs, "config": cfg})
    return {"cells": cells, "pairs": pairs, "config": cfg}


# ------------------------------------------------------------------ render
def _cell_values(cells, task, n, system, key):
    return [
        c["results"][system][key]
        for c in cells
        if c["task"] == task and c["n_per_class"] == n and system in c["results"]
    ]


def _verdict(ours: list[float], setfit: list[float]) -> str:
    """ "better", "tie (within noise)" or "worse": the mean gap against its standard error."""
    diffs = np.asarray(ours) - np.asarray(setfit)
    if len(diffs) < 2:
        return "one seed"
    se = statistics.stdev(diffs) / np.sqrt(len(diffs))
    mean = float(diffs.mean())
    if mean >= 0:
        return "better" if mean > 2 * se else "tie (within noise)"
    return "tie (within noise)" if -mean <= 2 * se else "worse"


def render_accuracy(result: dict) -> str:
    cfg, cells = result["config"], result["cells"]
    systems = [s for s in SYSTEMS if s in cfg["systems"]]
    header = ["task", "N/class", *[f"{s} acc %" for s in systems]]
    header += [f"{s} fit s" for s in systems]
    has_both = "ours" in systems and "setfit" in systems
    if has_both:
        header += ["ours vs SetFit (acc)", "time ours / SetFit", "goal met"]
    rows = []
    for task in cfg["tasks"]:
        for n in cfg["n_per_class"]:
            row = [task, str(n)]
            acc = {
                s: [100 * a for a in _cell_values(cells, task, n, s, "accuracy")] for s in systems
            }
            fit = {s: _cell_values(cells, task, n, s, "fit_s") for s in systems}
            row += [md.mean_sd(acc[s]) for s in systems]
            row += [md.mean_sd(fit[s]) for s in systems]
            if has_both:
                verdict = _verdict(acc["ours"], acc["setfit"])
                ratio = statistics.fmean(fit["ours"]) / statistics.fmean(fit["setfit"])
                above_frozen = "frozen" not in acc or statistics.fmean(
                    acc["ours"]
                ) > statistics.fmean(acc["frozen"])
                met = verdict != "worse" and ratio <= 0.5 and above_frozen
                judged = "not judged (one seed)" if verdict == "one seed" else None
                row += [verdict, f"{ratio:.2f}×", judged or ("yes" if met else "**no**")]
            rows.append(row)
    return md.table(header, rows)


def render_pairs(result: dict) -> str:
    rows = []
    for r in result["pairs"]:
        per_pair_us = 1e6 * r["seconds"] / max(r["n_pairs"], 1)
        growth = r["peak_rss_mib"] - r["rss_before_mib"]
        name = (
            "SetFit ContrastiveDataset" if r["system"] == "setfit" else "ours (plan_pair_batches)"
        )
        rows.append(
            [
                name,
                f"{r['n_classes']:,}",
                f"{r['n_pairs']:,}",
                f"{r['seconds']:.2f}",
                f"{per_pair_us:.2f}",
                f"{growth:.0f}",
                f"{growth * 2**20 / max(r['n_pairs'], 1):.0f}",
            ]
        )
    header = ["pair generation", "classes", "pairs", "seconds", "µs / pair", "peak RSS growth MiB"]
    header.append("bytes / pair")
    return md.table(header, rows)


def render(result: dict, meta: dict) -> str:
    cfg = result["config"]
    together = (
        "the systems of each cell ran at the same time, each in its own process"
        if cfg.get("together")
        else "the systems of each cell ran one after the other (interleaved, the order "
        "rotating with the seed)"
    )
    intro = (
        f"VADER, {len(cfg['tasks'])} task(s), N labelled sentences per class, "
        f"{cfg['seeds']} seed(s) of the labelled sample, one fixed test set of "
        f"{cfg['n_test']} sentences per task; accuracy mean ± sd over the seeds and the "
        "training time (pretrained weights on disk to a fitted classifier). Every system "
        f"starts from the packaged all-MiniLM-L6-v2, on the CPU with {cfg['threads']} torch "
        "threads, each fit in its own fresh process. The machine was shared with other "
        f"work while this ran: {together}, so times are comparable within a run, not "
        "across runs. *ours vs SetFit*: the mean accuracy gap against twice its standard "
        "error over the seeds (paired by seed); *goal met*: not worse than SetFit, at most "
        "0.5× its time, above the frozen row."
    )
    settings = "; ".join(f"{s}: {json.dumps(PARAMS[s])}" for s in SYSTEMS if s in cfg["systems"])
    pairs_intro = (
        "Pair generation with many classes: SetFit's `ContrastiveDataset` lists every "
        "pair of training sentences (O(n²)) before drawing its pairs; ours draws each "
        "batch's pairs among the batch's own sentences (O(pairs)). Real VADER sentences, "
        f"{cfg['pairs']['per_class']} per synthetic class, "
        f"{cfg['pairs']['iterations']} iterations (2 × iterations × n pairs), fresh "
        "process each; peak RSS growth is the process's peak over its size before "
        "generating."
    )
    return "\n\n".join(
        [
            "### Few-shot accuracy and training time",
            intro,
            render_accuracy(result),
            f"Settings: {settings}.",
            "### Pair generation with 1,000+ classes",
            pairs_intro,
            render_pairs(result),
            md.generated_note(meta),
        ]
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--sizes", default=None, help="JSON overriding keys of FULL")
    parser.add_argument("--output", default=None, help="markdown document to write into")
    parser.add_argument(
        "--render",
        default=None,
        help="write the tables of a run that was stopped early, from its fewshot-partial.json",
    )
    args = parser.parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    if args.sizes:
        sizes.update(json.loads(args.sizes))
    published = not args.quick and not args.sizes and args.output is None
    target = _common.ROOT / "docs" / "fewshot.md"
    output = Path(args.output) if args.output else target
    if not published and args.output is None:
        output = _common.ROOT / "build" / "fewshot.md"
    from benchmarks.run import code_hash

    command = "python -m benchmarks.fewshot" + "".join(
        f" {shlex.quote(a)}" for a in (argv if argv is not None else sys.argv[1:])
    )
    if args.render:
        saved = json.loads(Path(args.render).read_text())
        result = {k: saved[k] for k in ("cells", "pairs", "config")}
        cfg = result["config"]
        per_seed = len(cfg["tasks"]) * len(cfg["n_per_class"])
        total = cfg["seeds"] * per_seed
        # Only seeds with every cell: each row of the table then has the same seeds.
        complete = [
            seed
            for seed in range(cfg["seeds"])
            if sum(c["seed"] == seed for c in result["cells"]) == per_seed
        ]
        if not complete:
            raise SystemExit("the partial run has no complete seed yet: nothing to render")
        n_done = len(result["cells"])
        result["cells"] = [c for c in result["cells"] if c["seed"] in complete]
        code, minutes = saved["code"], saved["minutes"]
        command = (
            f"{saved['command']}` stopped after {n_done} of {total} cells; tables of its "
            f"{len(complete)} complete seed(s) written by `{command}"
        )
        result["config"] = {**cfg, "seeds": len(complete)}
    else:
        code = code_hash()
        started = time.perf_counter()
        partial = output.parent / "fewshot-partial.json"
        partial.parent.mkdir(parents=True, exist_ok=True)

        def keep(result: dict) -> None:  # a run cut short still leaves its cells
            minutes = (time.perf_counter() - started) / 60
            record = {**result, "code": code, "command": command, "minutes": minutes}
            partial.write_text(json.dumps(record, indent=1))

        result = run(sizes, log=lambda line: print(line, flush=True), on_cell=keep)
        minutes = (time.perf_counter() - started) / 60
    meta = {
        **_common.machine_info(),
        "command": command,
        "code": code,
        "date": f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        "total_minutes": minutes,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    text = target.read_text() if target.exists() else ""
    if output != target and output.exists():
        text = output.read_text()
    output.write_text(md.replace_block(text, "fewshot", render(result, meta)))
    (output.parent / "fewshot-result.json").write_text(json.dumps(result, indent=1))
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
