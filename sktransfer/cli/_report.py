"""``sktransfer report``: a transfer report on a CSV or Parquet file.

Reads a table, runs :func:`sktransfer.transfer_report` on one text or image
column against a target column, prints the verdict and the table, and writes
the report (HTML, Markdown or CSV, by the suffix of ``--out``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

_FORMATS = {".html": "html", ".htm": "html", ".md": "markdown", ".csv": "csv"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", help="a .csv or .parquet file, one sample per row")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", metavar="COLUMN", help="the column holding the texts")
    source.add_argument(
        "--image",
        metavar="COLUMN",
        help="the column holding image file paths (relative ones are read from the data "
        "file's folder)",
    )
    parser.add_argument("--target", metavar="COLUMN", required=True, help="the column to predict")
    parser.add_argument(
        "--model",
        metavar="NAME",
        nargs="+",
        action="extend",
        help="pretrained model(s) to compare (Hub ids, local folders, timm names); "
        "default: the packaged model of the modality",
    )
    parser.add_argument(
        "--out",
        metavar="PATH",
        action="append",
        default=[],
        help="write the report: .html (a page with the plot), .md or .csv (the table); "
        "may be given several times",
    )
    parser.add_argument("--cv", type=int, default=5, help="folds (default: 5)")
    parser.add_argument("--repeats", type=int, default=2, help="repeats of the folds (default: 2)")
    parser.add_argument(
        "--train-sizes",
        metavar="SIZE",
        nargs="+",
        type=float,
        help="learning-curve sizes: fractions of a training split (0-1] or counts",
    )
    parser.add_argument("--scoring", help="a scikit-learn scorer name (default: accuracy / r2)")
    parser.add_argument(
        "--finetune", action="store_true", help="also fine-tune each model (slow on a CPU)"
    )
    parser.add_argument(
        "--fewshot",
        action="store_true",
        help="text classification: also fit the few-shot classifier (contrastive tuning, "
        "then a head) on each model (slow on a CPU)",
    )
    parser.add_argument(
        "--domain",
        metavar="COLUMN",
        help="the column saying each row's domain: adds the domain-shift diagnostic "
        "(target vs source, in each pretrained model's features). Integers follow skada's "
        "convention (negative = target); other values need --target-domain",
    )
    parser.add_argument(
        "--target-domain",
        metavar="VALUE",
        nargs="+",
        action="extend",
        help="with --domain: the value(s) of the domain column that mark the target domain "
        "(every other value is the source)",
    )
    parser.add_argument(
        "--no-combine",
        action="store_true",
        help="leave out the pretrained + from-scratch combination",
    )
    parser.add_argument(
        "--cache",
        metavar="DIR",
        help="embedding cache folder, kept between runs so a rerun (e.g. after Ctrl-C) does "
        "not encode again; 'memory' keeps it in this process only (default: "
        "<data folder>/embeddings, see SKTRANSFER_DATA)",
    )
    parser.add_argument("--random-state", type=int, default=0, help="seed (default: 0)")
    parser.add_argument("--n-jobs", type=int, default=None, help="splits fitted in parallel")
    parser.add_argument("--quiet", action="store_true", help="no progress display")


def _read_table(path: Path):
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix == ".csv":
        return pd.read_csv(path)
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    raise ValueError(f"{path}: unknown file type {suffix!r}; use a .csv or .parquet file.")


def _fail(message: str) -> int:
    print(f"sktransfer report: error: {message}", file=sys.stderr)
    return 2


def _sample_domain(values, target_values):
    """skada's integer domains (negative = target) from a column; a str is an error."""
    import numpy as np

    if not target_values:
        if values.dtype.kind in "iu":
            return values.to_numpy()
        shown = ", ".join(map(repr, sorted(map(str, values.unique()))[:10]))
        return (
            f"--domain {values.name!r} holds {shown}: say which value(s) are the target "
            "domain with --target-domain VALUE (or use integers, negative = target)."
        )
    text = values.astype(str)
    missing = [v for v in target_values if v not in set(text)]
    if missing:
        shown = ", ".join(map(repr, sorted(set(text))[:10]))
        return (
            f"--target-domain {', '.join(map(repr, missing))}: no such value in the column "
            f"{values.name!r} (it holds {shown})."
        )
    # Source domains 1, 2, ...; target domains -1, -2, ... (skada's convention).
    source = sorted(set(text) - set(target_values))
    codes = {v: i + 1 for i, v in enumerate(source)}
    codes.update({v: -(i + 1) for i, v in enumerate(dict.fromkeys(target_values))})
    return np.array([codes[v] for v in text], dtype=np.int64)


def run(args: argparse.Namespace) -> int:
    path = Path(args.data)
    if not path.is_file():
        return _fail(f"{path}: no such file.")
    outs = [Path(p) for p in args.out]
    for out in outs:
        if out.suffix.lower() not in _FORMATS:
            return _fail(f"--out {out}: unknown suffix; use .html, .md or .csv.")
    try:
        table = _read_table(path)
    except ValueError as exc:
        return _fail(str(exc))
    column = args.text or args.image
    roles = [("--text" if args.text else "--image", column), ("--target", args.target)]
    if args.domain is not None:
        roles.append(("--domain", args.domain))
    elif args.target_domain:
        return _fail("--target-domain needs --domain COLUMN (the column it is a value of).")
    for role, name in roles:
        if name not in table.columns:
            shown = ", ".join(map(str, table.columns[:20]))
            return _fail(f"{role} {name!r}: {path.name} has no such column (it has: {shown}).")
    before = len(table)
    needed = [name for _, name in roles[1:]]
    table = table.dropna(subset=[column, *needed])
    if len(table) < before:
        print(
            f"sktransfer report: {before - len(table)} rows without "
            f"{' or '.join(map(repr, [column, *needed]))} left out",
            file=sys.stderr,
        )
    sample_domain = None
    if args.domain is not None:
        sample_domain = _sample_domain(table[args.domain], args.target_domain)
        if isinstance(sample_domain, str):
            return _fail(sample_domain)
    X = table[column]
    if args.image:
        folder = path.parent
        X = [p if os.path.isabs(p) else str(folder / p) for p in X.astype(str)]

    cache = args.cache
    if cache is None:
        from sktransfer.datasets import get_data_home

        cache = str(Path(get_data_home()) / "embeddings")
    elif cache.lower() == "none":
        cache = None

    from sktransfer.exceptions import InvalidInputError
    from sktransfer.report import transfer_report

    try:
        report = transfer_report(
            X,
            table[args.target].to_numpy(),
            candidates=args.model or "auto",
            cv=args.cv,
            n_repeats=args.repeats,
            scoring=args.scoring,
            train_sizes=args.train_sizes,
            n_jobs=args.n_jobs,
            random_state=args.random_state,
            modality="image" if args.image else "text",
            combine=not args.no_combine,
            finetune=args.finetune,
            fewshot=args.fewshot,
            sample_domain=sample_domain,
            cache=cache,
            progress=not args.quiet,
        )
    except KeyboardInterrupt:
        where = "this process's memory" if cache == "memory" else cache
        print(
            f"\nsktransfer report: interrupted. What was encoded is kept in the cache "
            f"({where}); run the same command again to continue.",
            file=sys.stderr,
        )
        return 130
    except (InvalidInputError, ValueError) as exc:
        return _fail(str(exc))
    print(report.summary())
    for out in outs:
        kind = _FORMATS[out.suffix.lower()]
        if kind == "html":
            report.to_html(out)
        elif kind == "markdown":
            out.write_text(report.to_markdown(), encoding="utf-8")
        else:
            report.results_.to_csv(out)
        print(f"sktransfer report: wrote {out}", file=sys.stderr)
    return 0
