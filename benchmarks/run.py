"""Run the benchmarks against the peers and write ``docs/benchmarks.md``.

Parts (each in a fresh Python process, so that one part's loaded models,
threads and allocator settings do not leak into the next):

- ``throughput``: sentences/s and images/s of each library, ratio to the direct call;
- ``cv``: ``GridSearchCV(cv=5)`` over 6 values of C, wall time per library;
- ``memory``: peak RSS encoding the same sentences, one fresh process per library;
- ``accuracy``: VADER sentiment per domain and Fashion-MNIST, baseline / frozen /
  fine-tuned, mean ± sd over seeds (reuses the memory part's encoded corpus).

Usage::

    python -m benchmarks                      # everything -> docs/benchmarks.md
    python -m benchmarks --only cv,memory     # some parts -> build/benchmarks.md
    python -m benchmarks --quick              # tiny sizes, a smoke test -> build/benchmarks.md
    python -m benchmarks --resume             # rerun only the parts that did not finish

Each part's result is kept in ``build/benchmark-parts/`` as soon as it finishes, so
a run that stops (a missing data set, an interrupted machine) can be resumed
without repeating the parts that finished; the run-time table says when each
part ran. The data sets are checked before anything runs.

Needs ``pip install -e '.[offline,benchmarks]'``; runs offline.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import _common
from benchmarks import _markdown as md

# Sizes of the full run. Most of its time is the peers re-encoding the data in every
# fit of the cross-validation part and encoding 20,000 sentences per library in the
# memory part; the run-time table of docs/benchmarks.md says how long each part took.
FULL = {
    "throughput-text": {"n_text": 400, "repeats": 3},
    "throughput-images": {"n_images": 96, "repeats": 3},
    "cv": {"n_sentences": 2000},
    "memory": {"n_sentences": 20000},
    "accuracy-text": {
        "n_corpus": 20000,
        "n_train": 400,
        "n_test": 400,
        "seeds": 3,
        "text_finetune": {"trainable_blocks": 2, "epochs": 2},
    },
    "accuracy-images": {
        "n_pool": 1200,
        "n_train": 800,
        "n_test": 400,
        "seeds": 3,
        "image_finetune": {"image_size": 64, "trainable_blocks": 3, "epochs": 3},
    },
}
# A smoke test of every code path in a few minutes; its figures mean nothing.
QUICK = {
    "throughput-text": {"n_text": 48, "repeats": 1},
    "throughput-images": {"n_images": 8, "repeats": 1},
    "cv": {"n_sentences": 60},
    "memory": {"n_sentences": 240},
    "accuracy-text": {
        "n_corpus": 240,
        "n_train": 16,
        "n_test": 16,
        "seeds": 1,
        "text_finetune": {"trainable_blocks": 1, "epochs": 1},
    },
    "accuracy-images": {
        "n_pool": 60,
        "n_train": 40,
        "n_test": 20,
        "seeds": 1,
        "image_finetune": {"image_size": 32, "trainable_blocks": 1, "epochs": 1},
    },
}
GROUPS = {
    "throughput": ["throughput-text", "throughput-images"],
    "cv": ["cv"],
    "memory": ["memory"],
    "accuracy": ["accuracy-text", "accuracy-images"],
}
ORDER = [part for parts in GROUPS.values() for part in parts]


def check_data(parts: list[str]) -> None:
    """Fail before anything runs if a part's data set is not on this machine."""
    from sktransfer.datasets import load_fashion_mnist, load_vader

    if any(p != "throughput-images" for p in parts):
        load_vader(download=False)
    if "accuracy-images" in parts:
        load_fashion_mnist(subset="test", n_samples=10, random_state=0, download=False)


def run_part(part: str, cfg: dict, workdir: Path) -> dict:
    """Run one part in this process and return its JSON-able result."""
    from benchmarks import accuracy, cv, memory, throughput

    if part == "throughput-text":
        return throughput.run_text(cfg)
    if part == "throughput-images":
        return throughput.run_images(cfg)
    if part == "cv":
        return cv.run(cfg)
    if part == "memory":
        return memory.run(cfg, workdir)
    if part == "accuracy-text":
        return accuracy.run_text(cfg, workdir)
    if part == "accuracy-images":
        return accuracy.run_images(cfg, workdir)
    raise ValueError(part)


def render(results: dict) -> list[str]:
    from benchmarks import accuracy, cv, memory, throughput

    sections = []
    if "throughput-text" in results or "throughput-images" in results:
        sections.append(
            throughput.render(results.get("throughput-text"), results.get("throughput-images"))
        )
    if "cv" in results:
        sections.append(cv.render(results["cv"]))
    if "accuracy-text" in results:
        sections.append(accuracy.render_text(results["accuracy-text"]))
    if "accuracy-images" in results:
        sections.append(accuracy.render_images(results["accuracy-images"]))
    if "memory" in results:
        sections.append(memory.render(results["memory"]))
    return sections


def _child(args) -> None:
    cfg = json.loads(args.config)
    result = run_part(args.part, cfg, Path(args.workdir))
    Path(args.result).write_text(json.dumps(result))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", default="", help=f"comma-separated parts: {','.join(GROUPS)} (default: all)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--output", default=None, help="markdown file to write")
    parser.add_argument("--part", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument(
        "--resume",
        action="store_true",
        help="reuse the saved result of every part that already finished with the same sizes",
    )
    parser.add_argument(
        "--workdir",
        default=None,
        help="where part results and encoded features are kept (default: build/benchmark-parts)",
    )
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.part:
        _child(args)
        return

    groups = [g.strip() for g in args.only.split(",") if g.strip()] or list(GROUPS)
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown:
        parser.error(f"unknown part(s) {unknown}; choose from {list(GROUPS)}")
    parts = [p for p in ORDER if any(p in GROUPS[g] for g in groups)]
    complete = set(parts) == set(ORDER) and not args.quick
    output = Path(
        args.output or (_common.ROOT / ("docs" if complete else "build") / "benchmarks.md")
    )
    sizes = QUICK if args.quick else FULL

    check_data(parts)
    workdir = Path(args.workdir) if args.workdir else _common.ROOT / "build" / "benchmark-parts"
    workdir = workdir / ("quick" if args.quick else "full")
    if not args.resume and workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    results, minutes, dates = {}, {}, {}
    for part in parts:
        saved = workdir / f"{part}.json"
        if args.resume and saved.exists():
            record = json.loads(saved.read_text())
            if record["config"] == sizes[part]:
                print(f"         {part}: reusing the result of {record['date']}", flush=True)
                results[part], minutes[part] = record["result"], record["seconds"] / 60
                dates[part] = record["date"]
                continue
        result_file = workdir / f"{part}.result.json"
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.run",
            "--part",
            part,
            "--config",
            json.dumps(sizes[part]),
            "--workdir",
            str(workdir),
            "--result",
            str(result_file),
        ]
        print(f"[{time.perf_counter() - started:6.0f} s] {part} ...", flush=True)
        part_start = time.perf_counter()
        subprocess.run(cmd, cwd=_common.ROOT, check=True)
        seconds = time.perf_counter() - part_start
        results[part], minutes[part] = json.loads(result_file.read_text()), seconds / 60
        dates[part] = f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC"
        record = {"config": sizes[part], "seconds": seconds, "date": dates[part]}
        saved.write_text(json.dumps({**record, "result": results[part]}))
        print(f"         {part}: {seconds:.0f} s", flush=True)

    total = sum(minutes.values())
    command = "python -m benchmarks" + "".join(
        f" {shlex.quote(a)}" for a in (argv if argv is not None else sys.argv[1:])
    )
    meta = {
        **_common.machine_info(),
        "command": command,
        "date": f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        "total_minutes": total,
    }
    timings = md.table(
        ["part", "minutes", "finished", "sizes"],
        [[p, f"{minutes[p]:.1f}", dates[p], json.dumps(sizes[p])] for p in parts],
    )
    sections = render(results) + [md.section("Run time per part", "", timings, "", [])]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(md.document(meta, sections))
    print(f"wrote {output} ({total:.1f} min)")


if __name__ == "__main__":
    main()
