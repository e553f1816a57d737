"""`sktransfer embed` memory and speed; 1 vs 2 Dask workers against the in-process path.

One run measures everything the section in ``docs/scale.md`` shows (the two 100k-row jobs
take most of it: tens of minutes on 2 cores; needs ``pip install -e '.[benchmarks,dask]'``)::

    python -m benchmarks.embed_scale --write-docs     # 10k and 100k rows -> docs/scale.md
    python -m benchmarks.embed_scale --quick          # tiny sizes, a smoke test -> build/

Part 1, for each size: ``sktransfer embed`` of a CSV of short texts (all-MiniLM-L6-v2, the
packaged copy) and, as the peer, an in-memory job on the same rows (``pandas.read_csv``,
``TextEncoder.fit().transform`` of every row in one call, ``DataFrame.to_parquet``), each
in its own fresh process, interleaved; the peak RSS (``ru_maxrss``) of each process and
the wall time of each job from reading the input to the written file (imports and the
model load happen before the clock starts, in both).

Part 2: ``TextEncoder.transform`` of a dask Bag (8 partitions) on a ``LocalCluster`` of 1
worker process (2 torch threads) and of 2 worker processes (1 torch thread each, so the
two cores are not oversubscribed), against the in-process ``transform`` with 2 torch
threads -- each in a fresh process, the model loaded on every worker before the clock
starts (cluster start and model load are not in the time).

Texts: distinct synthetic sentences of 6-14 common English words (seeded), so that no
row is a duplicate that one call would encode once and chunked calls several times.
``--write-docs`` replaces the generated section of ``docs/scale.md``; ``--quick`` writes
``build/embed-scale-quick.md`` and never the docs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import _common
from benchmarks import _markdown as md

FULL = {"sizes": [10_000, 100_000], "dask_rows": 4000, "chunk_size": 2048}
QUICK = {"sizes": [100, 200], "dask_rows": 48, "chunk_size": 50}
# Every job runs in float32: "auto" may pick bfloat16 on one CPU and not another, and
# the command's default is float32 while the encoders' is "auto".
PRECISION = "float32"
# The goals of the issue this benchmark answers: flat memory and in-memory speed, each
# within this fraction.
GOAL = 0.10
WORDS = (
    "the a this that one my your our good bad new old great small big long short best worst "
    "movie film book story phone app food service room hotel price screen battery song game "
    "was is felt looked seemed really very quite too not never always still just so "
    "love like hate enjoy recommend return buy watch read play use try want need "
    "and but or because when while after before with without for from about into over "
    "people friend family kids staff owner team author actor director cast plot ending "
    "day night week year time money place city home work school trip weekend morning "
    "fast slow cheap expensive funny boring clean dirty friendly rude easy hard nice awful"
).split()


def short_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct sentences of 6-14 words."""
    import numpy as np

    rng = np.random.default_rng(seed)
    seen: set[str] = set()
    texts = []
    while len(texts) < n:
        words = rng.choice(WORDS, size=int(rng.integers(6, 15)))
        text = " ".join(words)
        if text not in seen:
            seen.add(text)
            texts.append(text)
    return texts


# ---------------------------------------------------------------- children
def _peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _load_untimed(model: str) -> None:
    """Import and load the model before the clock starts (both jobs share this cost)."""
    from sktransfer import TextEncoder

    # kept in the loaded-network table
    TextEncoder(model, progress=False, cache=None, precision=PRECISION).fit()


def child_embed(csv: str, out: str, model: str, chunk_size: int) -> dict:
    from sktransfer.cli import main

    _load_untimed(model)  # the command's own fit finds the network already loaded
    start = time.perf_counter()
    code = main(
        ["embed", csv, "-o", out, "--model", model, "--column", "text", "--progress", "off"]
        + ["--chunk-size", str(chunk_size), "--precision", PRECISION]
    )
    seconds = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"sktransfer embed exited with {code}")
    return {"seconds": seconds, "peak_rss_mib": _peak_rss_mib()}


def child_in_memory(csv: str, out: str, model: str) -> dict:
    import pandas as pd

    from sktransfer import TextEncoder

    _load_untimed(model)
    start = time.perf_counter()
    texts = pd.read_csv(csv)["text"].tolist()
    encoder = TextEncoder(model, progress=False, cache=None, precision=PRECISION)
    embeddings = encoder.fit().transform(texts)
    frame = pd.DataFrame({"row": range(len(texts)), "embedding": list(embeddings)})
    frame.to_parquet(out)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_rss_mib": _peak_rss_mib()}


def child_dask(texts_file: str, model: str, workers: int) -> dict:
    """Seconds of one transform: in-process (workers=0) or on a LocalCluster of ``workers``."""
    import numpy as np

    from sktransfer import TextEncoder

    texts = json.loads(Path(texts_file).read_text())
    threads = 2 if workers <= 1 else 1  # workers x torch threads = the 2 cores
    encoder = TextEncoder(
        model, progress=False, cache=None, n_threads=threads, precision=PRECISION
    ).fit()
    if workers == 0:
        encoder.transform(texts[:64])  # warm-up, untimed
        start = time.perf_counter()
        out = encoder.transform(texts)
        return {"seconds": time.perf_counter() - start, "rows": len(out)}
    import dask.bag as db
    import distributed

    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with (
        distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            env=env,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        # Every worker imports and loads the model (and runs once), untimed.
        for worker in client.scheduler_info(n_workers=-1)["workers"]:
            client.submit(_warm, encoder, texts[:64], workers=[worker], pure=False).result()
        bag = db.from_sequence(texts, npartitions=8)
        start = time.perf_counter()
        out = client.compute(encoder.transform(bag)).result()
        seconds = time.perf_counter() - start
    compared = min(200, len(texts))
    reference = encoder.transform(texts[:compared])
    drift = float(np.abs(out[:compared] - reference).max())
    return {"seconds": seconds, "rows": len(out), "max_abs_diff": drift, "compared": compared}


def _warm(encoder, texts):
    encoder.transform(texts)


def _run_child(kind: str, *args) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.embed_scale", "--child", kind, *map(str, args)],
        cwd=_common.ROOT,
        env=_common.worker_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -------------------------------------------------------------------- parent
def measure(sizes: list[int], dask_rows: int, chunk_size: int, workdir: Path) -> dict:
    import pandas as pd

    model = _common.text_model_folder()
    workdir.mkdir(parents=True, exist_ok=True)
    results = {"memory": [], "dask": {}, "load_before": os.getloadavg()[0]}
    for n in sizes:
        csv = workdir / f"texts-{n}.csv"
        pd.DataFrame({"text": short_texts(n)}).to_csv(csv, index=False)
        for kind in ("embed", "in-memory"):  # interleaved, each in a fresh process
            out = workdir / f"out-{kind}-{n}.parquet"
            for stale in (out, out.with_name(out.name + ".partial")):
                if stale.is_dir():
                    shutil.rmtree(stale)
                elif stale.exists():
                    stale.unlink()
            if kind == "embed":
                got = _run_child("embed", csv, out, model, chunk_size)
            else:
                got = _run_child("in-memory", csv, out, model)
            got.update(kind=kind, rows=n)
            print(json.dumps(got), file=sys.stderr)
            results["memory"].append(got)
    texts_file = workdir / f"dask-texts-{dask_rows}.json"
    texts_file.write_text(json.dumps(short_texts(dask_rows, seed=1)))
    for workers in (0, 1, 2):
        got = _run_child("dask", texts_file, model, workers)
        print(json.dumps({"workers": workers, **got}), file=sys.stderr)
        results["dask"][str(workers)] = got
    results["load_after"] = os.getloadavg()[0]
    results["chunk_size"] = chunk_size
    results["dask_rows"] = dask_rows
    return results


def _within(value: float) -> str:
    return "goal met" if abs(value) <= GOAL else "goal not met"


def render(results: dict, meta: dict) -> str:
    """The generated section of docs/scale.md: the tables, the verdicts, how they were made."""
    lines = [
        md.generated_note(meta),
        "",
        f"{meta['cores']} cores, {meta['memory']}, torch {meta['versions']['torch']}. The "
        "machine was shared with other work (load average "
        f"{results['load_before']:.1f} before, {results['load_after']:.1f} after): compare "
        "rows of one table, not runs. One run of each job, each in its own fresh process, "
        "interleaved.",
        "",
        "#### `sktransfer embed` vs an in-memory job",
        "",
        f"Short synthetic texts (6-14 words), all-MiniLM-L6-v2, float32, "
        f"`--chunk-size {results['chunk_size']}`. Time: reading, encoding and writing (imports "
        "and model load, the same for both, before the clock).",
        "",
    ]
    rows = []
    by = {(r["kind"], r["rows"]): r for r in results["memory"]}
    sizes = sorted({r["rows"] for r in results["memory"]})
    for n in sizes:
        for kind in ("embed", "in-memory"):
            r = by[(kind, n)]
            label = "`sktransfer embed`" if kind == "embed" else "in memory (`transform`)"
            rows.append(
                [
                    f"{label}, {n:,} rows",
                    f"{r['peak_rss_mib']:.0f}",
                    f"{n / r['seconds']:.0f}",
                    md.ratio(by[("in-memory", n)]["seconds"], r["seconds"]),
                ]
            )
    lines.append(md.table(["job", "peak RSS (MiB)", "rows/s", "speed vs in memory"], rows))
    lines.append("")
    small, large = sizes[0], sizes[-1]
    for kind in ("embed", "in-memory"):
        growth = by[(kind, large)]["peak_rss_mib"] / by[(kind, small)]["peak_rss_mib"] - 1
        what = "`sktransfer embed`" if kind == "embed" else "The in-memory job"
        goal = f" (flat within {GOAL:.0%}: {_within(growth)})" if kind == "embed" else ""
        lines.append(
            f"- {what}: peak RSS at {large:,} rows is {growth:+.1%} of that at {small:,} "
            f"rows{goal}."
        )
    for n in sizes:
        gap = by[("in-memory", n)]["seconds"] / by[("embed", n)]["seconds"] - 1
        lines.append(
            f"- Throughput of `sktransfer embed` at {n:,} rows: {gap:+.1%} vs in memory "
            f"(within {GOAL:.0%}: {_within(gap)})."
        )
    dask = results["dask"]
    base = dask["0"]["seconds"]
    n_rows = results["dask_rows"]
    runs = [["in-process, 2 torch threads", f"{base:.1f}", f"{n_rows / base:.0f}", "1.00×"]]
    for w in (1, 2):
        threads = 2 // w
        runs.append(
            [
                f"{w} worker{'s' if w > 1 else ''} × {threads} torch thread"
                + ("s" if threads > 1 else ""),
                f"{dask[str(w)]['seconds']:.1f}",
                f"{n_rows / dask[str(w)]['seconds']:.0f}",
                md.ratio(base, dask[str(w)]["seconds"]),
            ]
        )
    drift = max(dask[w]["max_abs_diff"] for w in ("1", "2"))
    compared = min(dask[w]["compared"] for w in ("1", "2"))
    lines += [
        "",
        "#### 1 vs 2 Dask workers",
        "",
        f"`TextEncoder.transform` (float32) of {n_rows:,} short texts as a dask Bag of 8 "
        "partitions on "
        "a `LocalCluster` of worker processes (1 thread each; torch threads pinned so that "
        "workers × threads = 2 cores), against the in-process call. Model loaded on every "
        "worker before the clock starts.",
        "",
        md.table(["run", "seconds", "rows/s", "speed vs in-process"], runs),
        "",
        f"- 2 workers vs 1: {dask['1']['seconds'] / dask['2']['seconds']:.2f}× the speed.",
        f"- Overhead of the distributed path (1 worker vs in-process, the same 2 threads): "
        f"{(dask['1']['seconds'] / base - 1):+.1%} time.",
        f"- The workers' rows equal the in-process rows to {drift:.1e} (largest absolute "
        f"difference, first {compared} rows).",
    ]
    return "\n".join(lines)


def command_line(args, config: dict) -> str:
    """The command that reproduces this run (every size named)."""
    if args.quick:
        return "python -m benchmarks.embed_scale --quick"
    parts = ["python -m benchmarks.embed_scale"]
    if config != FULL:
        parts += [
            "--sizes",
            " ".join(map(str, config["sizes"])),
            "--dask-rows",
            str(config["dask_rows"]),
            "--chunk-size",
            str(config["chunk_size"]),
        ]
    return " ".join(parts + (["--write-docs"] if args.write_docs else []))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", help=f"default {FULL['sizes']}")
    parser.add_argument("--dask-rows", type=int, help=f"default {FULL['dask_rows']}")
    parser.add_argument("--chunk-size", type=int, help=f"default {FULL['chunk_size']}")
    parser.add_argument("--quick", action="store_true", help="tiny sizes; writes build/ only")
    parser.add_argument("--workdir", help="default build/embed-scale[-quick]")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--child", nargs="+")
    args = parser.parse_args(argv)
    if args.child:
        kind, *rest = args.child
        if kind == "embed":
            got = child_embed(rest[0], rest[1], rest[2], int(rest[3]))
        elif kind == "in-memory":
            got = child_in_memory(*rest)
        else:
            got = child_dask(rest[0], rest[1], int(rest[2]))
        print(json.dumps(got))
        return
    if args.quick and args.write_docs:
        parser.error("--quick figures never go into the docs: drop --write-docs")
    config = dict(QUICK if args.quick else FULL)
    for name in config:
        if getattr(args, name) is not None:
            config[name] = getattr(args, name)
    if len(config["sizes"]) < 2:
        parser.error("--sizes needs two sizes or more: memory is compared across them")
    name = "embed-scale-quick" if args.quick else "embed-scale"
    workdir = Path(args.workdir or _common.ROOT / "build" / name)
    from benchmarks.run import code_hash

    meta = {
        "command": command_line(args, config),
        "code": code_hash(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        **_common.machine_info(),
    }
    results = measure(config["sizes"], config["dask_rows"], config["chunk_size"], workdir)
    (workdir / "results.json").write_text(json.dumps({"meta": meta, **results}, indent=1))
    text = render(results, meta)
    print(text)
    if args.write_docs:
        page = _common.ROOT / "docs" / "scale.md"
        page.write_text(md.replace_block(page.read_text(), "embed-scale", text))
    else:
        out = _common.ROOT / "build" / f"{name}.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
        print(f"written to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
