"""`sktransfer embed` memory and speed; 1 vs 2 Dask workers against the in-process path.

Run (about 15 minutes on 2 cores; needs ``pip install -e '.[benchmarks,dask]'``)::

    python -m benchmarks.embed_scale --sizes 10000 50000 --dask-rows 4000 --write-docs

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
``--write-docs`` replaces the generated section of ``docs/scale.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import _common
from benchmarks import _markdown as md

COMMAND = "python -m benchmarks.embed_scale --sizes {sizes} --dask-rows {dask_rows} --write-docs"
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

    TextEncoder(model, progress=False, cache=None).fit()  # kept in the loaded-network table


def child_embed(csv: str, out: str, model: str, chunk_size: int) -> dict:
    from sktransfer.cli import main

    _load_untimed(model)  # the command's own fit finds the network already loaded
    start = time.perf_counter()
    code = main(
        ["embed", csv, "-o", out, "--model", model, "--column", "text", "--progress", "off"]
        + ["--chunk-size", str(chunk_size)]
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
    embeddings = TextEncoder(model, progress=False, cache=None).fit().transform(texts)
    frame = pd.DataFrame({"row": range(len(texts)), "embedding": list(embeddings)})
    frame.to_parquet(out)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_rss_mib": _peak_rss_mib()}


def child_dask(texts_file: str, model: str, workers: int) -> dict:
    """Seconds of one transform: in-process (workers=0) or on a LocalCluster of ``workers``."""
    import numpy as np

    from sktransfer import TextEncoder

    texts = json.loads(Path(texts_file).read_text())
    threads = 2 if workers <= 1 else 1
    encoder = TextEncoder(model, progress=False, cache=None, n_threads=threads).fit()
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
        client.run(_warm, encoder, texts[:64])  # every worker loads the model, untimed
        bag = db.from_sequence(texts, npartitions=8)
        start = time.perf_counter()
        out = client.compute(encoder.transform(bag)).result()
        seconds = time.perf_counter() - start
        reference = encoder.transform(texts[:200])
        drift = float(np.abs(out[:200] - reference).max())
    return {"seconds": seconds, "rows": len(out), "max_abs_diff": drift}


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
    results = {"memory": [], "dask": {}, "load_before": os.getloadavg()}
    for n in sizes:
        csv = workdir / f"texts-{n}.csv"
        pd.DataFrame({"text": short_texts(n)}).to_csv(csv, index=False)
        for kind in ("embed", "in-memory"):  # interleaved, each in a fresh process
            out = workdir / f"out-{kind}-{n}.parquet"
            for stale in (out, out.with_name(out.name + ".partial")):
                if stale.is_dir():
                    import shutil

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
        results["dask"][workers] = got
    results["load_after"] = os.getloadavg()
    results["chunk_size"] = chunk_size
    results["dask_rows"] = dask_rows
    return results


def render(results: dict, command: str) -> str:
    info = _common.machine_info()
    lines = [
        f"Generated by `{command}` on {time.strftime('%Y-%m-%d', time.gmtime())}: "
        f"{info['cpu']} ({info['cpu_features']}), {info['cores']} cores, {info['memory']}, "
        f"torch {info['versions']['torch']}. The machine was shared with other work "
        f"(load average {results['load_before'][0]:.1f} before, "
        f"{results['load_after'][0]:.1f} after): compare rows of one table, not runs. "
        "One run of each job, each in its own fresh process, interleaved.",
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
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        for kind in ("embed", "in-memory"):
            growth = by[(kind, large)]["peak_rss_mib"] / by[(kind, small)]["peak_rss_mib"] - 1
            what = "`sktransfer embed`" if kind == "embed" else "The in-memory job"
            lines.append("")
            lines.append(
                f"{what}: peak RSS at {large:,} rows is {growth:+.1%} of that at {small:,} rows."
            )
    dask = results["dask"]
    base = dask["0"]["seconds"] if "0" in dask else dask[0]["seconds"]
    get = lambda w: dask[str(w)] if str(w) in dask else dask[w]  # noqa: E731
    lines += [
        "",
        "#### 1 vs 2 Dask workers",
        "",
        f"`TextEncoder.transform` of {results['dask_rows']:,} short texts as a dask Bag of 8 "
        "partitions on a `LocalCluster` of worker processes (1 thread each; torch threads "
        "pinned so that workers × threads = 2 cores), against the in-process call. Model "
        "loaded on every worker before the clock starts.",
        "",
        md.table(
            ["run", "seconds", "rows/s", "vs in-process"],
            [
                [
                    "in-process, 2 torch threads",
                    f"{base:.1f}",
                    f"{results['dask_rows'] / base:.0f}",
                    "1.00×",
                ],
                *[
                    [
                        f"{w} worker{'s' if w > 1 else ''} × {2 // w} torch thread"
                        + ("s" if 2 // w > 1 else ""),
                        f"{get(w)['seconds']:.1f}",
                        f"{results['dask_rows'] / get(w)['seconds']:.0f}",
                        md.ratio(base, get(w)["seconds"]),
                    ]
                    for w in (1, 2)
                ],
            ],
        ),
        "",
        f"2 workers vs 1: {get(1)['seconds'] / get(2)['seconds']:.2f}× the speed; the "
        f"distributed path with 1 worker vs in-process: "
        f"{(get(1)['seconds'] / base - 1):+.1%} time.",
    ]
    return "\n".join(lines)


def write_docs(text: str, page: Path) -> None:
    doc = page.read_text()
    pattern = re.compile(
        r"(<!-- generated:embed-scale -->\n).*?(<!-- /generated:embed-scale -->)", re.S
    )
    if not pattern.search(doc):
        raise SystemExit(f"{page} has no generated:embed-scale section")
    page.write_text(pattern.sub(lambda m: m.group(1) + text + "\n" + m.group(2), doc))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 50000])
    parser.add_argument("--dask-rows", type=int, default=4000)
    parser.add_argument("--chunk-size", type=int, default=2048)
    parser.add_argument("--workdir", default="build/embed-scale")
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
    workdir = Path(args.workdir)
    results = measure(args.sizes, args.dask_rows, args.chunk_size, workdir)
    (workdir / "results.json").write_text(json.dumps(results, indent=1))
    command = COMMAND.format(sizes=" ".join(map(str, args.sizes)), dask_rows=args.dask_rows)
    text = render(json.loads((workdir / "results.json").read_text()), command)
    print(text)
    if args.write_docs:
        write_docs(text, _common.ROOT / "docs" / "scale.md")


if __name__ == "__main__":
    main()
