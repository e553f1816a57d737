"""Run the benchmarks against the peers and write every published figure, in one run.

Parts (each in a fresh Python process, so that one part's loaded models,
threads and allocator settings do not leak into the next; the throughput, memory
and allocator parts also start a fresh process per system measured):

- ``throughput``: sentences/s and images/s of each library and of the best plain
  timm usage, with and without the allocator tuning, ratio to the direct call;
- ``avx2``: the text throughput with the instruction set capped at AVX2 (an
  AVX2-only CPU emulated; docs/speed.md);
- ``photos``: images/s on real photos of several megapixels (Debian's wallpaper
  packages ``mate-backgrounds`` and ``ukui-wallpapers``, installed by apt);
- ``cv``: ``GridSearchCV(cv=5)`` over values of C, wall time per library and per
  sktransfer cache store at two BLAS thread counts (also docs/cache.md);
- ``memory``: peak RSS encoding the same sentences, fresh processes per library;
- ``accuracy``: VADER sentiment per domain and Fashion-MNIST, baseline / frozen /
  fine-tuned, mean ± sd over seeds (reuses the memory part's encoded corpus);
- ``finetune``: ``bench_finetune.py``'s accuracy and training-loop tables
  (docs/finetuning.md);
- ``allocator``: a fine-tuning ``fit`` with and without the allocator tuning, fresh
  processes (docs/speed.md);
- ``precision``: bfloat16 numerics against float32 (docs/speed.md);
- ``fingerprint``: the cost of hashing the packaged models' weights on every load
  (docs/cache.md).

Usage::

    python -m benchmarks                      # everything -> docs/
    python -m benchmarks --only cv,memory     # some parts -> build/
    python -m benchmarks --quick              # tiny sizes, a smoke test -> build/
    python -m benchmarks --resume             # rerun only the parts that did not finish
    python -m benchmarks --only throughput --write-docs  # these parts' sections -> docs/

A complete run (every part, full sizes) writes ``docs/benchmarks.md`` and the
generated sections of ``docs/speed.md``, ``docs/cache.md`` and
``docs/finetuning.md`` (between ``<!-- generated:NAME -->`` markers); any other
run writes ``build/benchmarks.md`` and copies of those documents under
``build/docs/``, unless ``--write-docs`` asks for the parts' sections in
``docs/`` (each generated section names the command that wrote it). Each
part's result is kept in ``build/benchmark-parts/`` as soon as it finishes,
with its sizes and a hash of the Python sources of the library and the
benchmarks; ``--resume`` reuses a kept part only when both are
unchanged, so every published figure comes from one code version, named in
every generated table. The data sets are checked before anything runs.

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

# Sizes of the full run, chosen so that the whole suite takes well under 50 minutes
# on an idle 2-core CPU (the run-time table at the end of docs/benchmarks.md says
# how long each part took). Most of it is the peers re-encoding the sentences in
# every fit of the cross-validation part and the fine-tuning fits.
FULL = {
    "throughput-text": {"n_text": 256, "repeats": 3, "rounds": 2},
    "throughput-images": {"n_images": 256, "repeats": 3, "rounds": 2},
    "throughput-photos": {"n_photos": 32, "repeats": 3, "rounds": 2},
    "throughput-avx2": {"n_text": 256, "repeats": 3, "rounds": 2},
    "cv": {"n_sentences": 400, "c_values": [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0]},
    "memory": {"n_sentences": 3000, "rounds": 2},
    "accuracy-text": {
        "n_corpus": 3000,
        "n_train": 200,
        "n_test": 250,
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
    "finetune": {
        "seeds": 3,
        "n_text_train": 400,
        "n_text_test": 400,
        "n_image_train": 800,
        "n_image_test": 400,
        "image_size": 64,
        "n_loop": 256,
        "loop_epochs": 3,
        "quick": False,
    },
    "allocator-fit": {"repeats": 3, "n_images": 96, "image_size": 160, "n_text": 192},
    "precision": {"n_text": 2000, "n_accuracy": 2000},
    "fingerprint": {"repeats": 7},
}
# A smoke test of every code path in a few minutes; its figures mean nothing.
QUICK = {
    "throughput-text": {"n_text": 32, "repeats": 2},
    "throughput-images": {"n_images": 8, "repeats": 2, "rounds": 2},
    "throughput-photos": {"n_photos": 8, "repeats": 1},
    "throughput-avx2": {"n_text": 32, "repeats": 2},
    "cv": {"n_sentences": 60, "c_values": [0.1, 1.0]},
    "memory": {"n_sentences": 240, "rounds": 2},
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
    "finetune": {
        "seeds": 1,
        "n_text_train": 40,
        "n_text_test": 40,
        "n_image_train": 60,
        "n_image_test": 40,
        "image_size": 32,
        "n_loop": 32,
        "loop_epochs": 2,
        "quick": True,
    },
    "allocator-fit": {"repeats": 1, "n_images": 16, "image_size": 64, "n_text": 16},
    "precision": {"n_text": 16, "n_accuracy": 40},
    "fingerprint": {"repeats": 2},
}
GROUPS = {
    "throughput": ["throughput-text", "throughput-images"],
    "photos": ["throughput-photos"],
    "avx2": ["throughput-avx2"],
    "cv": ["cv"],
    "memory": ["memory"],
    "accuracy": ["accuracy-text", "accuracy-images"],
    "finetune": ["finetune"],
    "allocator": ["allocator-fit"],
    "precision": ["precision"],
    "fingerprint": ["fingerprint"],
}
ORDER = [part for parts in GROUPS.values() for part in parts]
# The documents whose figure sections this suite writes (between generated markers).
DOCS = ("speed.md", "cache.md", "finetuning.md")


def code_hash(root: Path | None = None) -> str:
    """A short hash of the code every figure depends on: the library and the benchmarks.

    The Python sources under ``sktransfer/`` and ``benchmarks/``, by path and content.
    """
    import hashlib

    root = root or _common.ROOT
    digest = hashlib.sha256()
    for pattern in ("sktransfer/**/*.py", "benchmarks/**/*.py"):
        for path in sorted(root.glob(pattern)):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def check_data(parts: list[str], sizes: dict | None = None) -> None:
    """Fail before anything runs if a part's data set is not on this machine.

    Also checks that the accuracy part's per-domain splits fit in the corpus it
    reuses, so a bad size stops the run at once instead of after the other parts.
    """
    from sktransfer.datasets import load_fashion_mnist, load_vader

    if any(p not in ("throughput-images", "throughput-photos") for p in parts):
        load_vader(download=False)
    if "throughput-photos" in parts:
        _common.large_photos()
    if {"accuracy-images", "finetune", "allocator-fit"} & set(parts):
        load_fashion_mnist(subset="test", n_samples=10, random_state=0, download=False)
    if sizes is not None and "accuracy-text" in parts:
        from collections import Counter

        from benchmarks import memory

        cfg = sizes["accuracy-text"]
        _, _, domains = memory.corpus({"n_sentences": cfg["n_corpus"]})
        domain, smallest = min(Counter(domains).items(), key=lambda item: item[1])
        if cfg["n_train"] + cfg["n_test"] > smallest:
            raise SystemExit(
                f"accuracy-text: n_train + n_test = {cfg['n_train'] + cfg['n_test']} but the "
                f"{cfg['n_corpus']}-sentence corpus has only {smallest} sentences of domain "
                f"{str(domain)!r}; lower n_train / n_test or raise n_corpus"
            )


def run_part(part: str, cfg: dict, workdir: Path) -> dict:
    """Run one part in this process and return its JSON-able result."""
    from benchmarks import (
        accuracy,
        allocator,
        bench_finetune,
        bench_fingerprint,
        check_precision,
        cv,
        memory,
        throughput,
    )

    if part == "fingerprint":
        return bench_fingerprint.run(cfg)
    if part == "throughput-text":
        return throughput.run_text(cfg, workdir)
    if part == "throughput-images":
        return throughput.run_images(cfg, workdir)
    if part == "throughput-photos":
        return throughput.run_photos(cfg, workdir)
    if part == "throughput-avx2":
        return throughput.run_avx2(cfg, workdir)
    if part == "finetune":
        return bench_finetune.run(cfg)
    if part == "allocator-fit":
        return allocator.run(cfg, workdir)
    if part == "precision":
        return check_precision.run(cfg)
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
    """The sections of docs/benchmarks.md, for the parts that ran."""
    from benchmarks import (
        accuracy,
        allocator,
        bench_finetune,
        bench_fingerprint,
        check_precision,
        cv,
        memory,
        throughput,
    )

    sections = []
    if "throughput-text" in results or "throughput-images" in results:
        sections.append(
            throughput.render(results.get("throughput-text"), results.get("throughput-images"))
        )
    if "throughput-photos" in results:
        sections.append(throughput.render_photos(results["throughput-photos"]))
    if "throughput-avx2" in results:
        sections.append(throughput.render_avx2(results["throughput-avx2"]))
    if "cv" in results:
        sections.append(cv.render(results["cv"]))
    if "accuracy-text" in results:
        sections.append(accuracy.render_text(results["accuracy-text"]))
    if "accuracy-images" in results:
        sections.append(accuracy.render_images(results["accuracy-images"]))
    if "memory" in results:
        sections.append(memory.render(results["memory"]))
    if "finetune" in results:
        sections.append(bench_finetune.render(results["finetune"]))
    if "allocator-fit" in results:
        sections.append(allocator.render(results["allocator-fit"]))
    if "precision" in results:
        sections.append(check_precision.render(results["precision"]))
    if "fingerprint" in results:
        sections.append(bench_fingerprint.render(results["fingerprint"]))
    return sections


def doc_blocks(results: dict) -> dict[str, dict[str, str]]:
    """``{document: {block: markdown}}``: the generated figure sections of docs/*.md."""
    from benchmarks import (
        allocator,
        bench_finetune,
        bench_fingerprint,
        check_precision,
        cv,
        throughput,
    )

    def sub(section: str) -> str:  # one heading level down inside a document
        return section.replace("## ", "### ", 1)

    blocks: dict[str, dict[str, str]] = {name: {} for name in DOCS}
    if "throughput-text" in results:
        blocks["speed.md"]["speed-text"] = sub(throughput.render_text(results["throughput-text"]))
    if "throughput-images" in results:
        blocks["speed.md"]["speed-images"] = sub(
            throughput.render_images(results["throughput-images"])
        )
    if "throughput-photos" in results:
        blocks["speed.md"]["speed-photos"] = sub(
            throughput.render_photos(results["throughput-photos"])
        )
    if "throughput-avx2" in results:
        blocks["speed.md"]["speed-avx2"] = sub(throughput.render_avx2(results["throughput-avx2"]))
    if "allocator-fit" in results:
        blocks["speed.md"]["allocator-fit"] = sub(allocator.render(results["allocator-fit"]))
    if "precision" in results:
        blocks["speed.md"]["precision"] = sub(check_precision.render(results["precision"]))
    if "cv" in results:
        blocks["cache.md"]["cache"] = (
            cv.intro(results["cv"]) + "\n\n" + cv.cache_table(results["cv"])
        )
    if "fingerprint" in results:
        blocks["cache.md"]["fingerprint"] = sub(bench_fingerprint.render(results["fingerprint"]))
    if "finetune" in results:
        blocks["finetuning.md"]["finetune"] = sub(bench_finetune.render(results["finetune"]))
    return blocks


def write_docs(results: dict, meta: dict, folder: Path) -> list[Path]:
    """Write the generated blocks into ``folder``'s copies of docs/speed.md, cache.md, ...

    Each document is read from ``docs/`` (so a smoke test writes its copies
    elsewhere and leaves ``docs/`` alone); a block whose part did not run keeps
    its current text.
    """
    written = []
    folder.mkdir(parents=True, exist_ok=True)
    for name, blocks in doc_blocks(results).items():
        text = (_common.ROOT / "docs" / name).read_text()
        for block, content in blocks.items():
            text = md.replace_block(text, block, content + "\n\n" + md.generated_note(meta))
        (folder / name).write_text(text)
        written.append(folder / name)
    return written


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
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help="with --only (full sizes): write the generated sections of the parts that ran "
        "into docs/speed.md, cache.md and finetuning.md (each names this command); "
        "docs/benchmarks.md is written by a complete run only",
    )
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
    code = code_hash()
    if args.write_docs and args.quick:
        parser.error("--write-docs publishes figures: not with --quick")

    check_data(parts, sizes)
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
            if record["config"] == sizes[part] and record.get("code") == code:
                print(f"         {part}: reusing the result of {record['date']}", flush=True)
                results[part], minutes[part] = record["result"], record["seconds"] / 60
                dates[part] = record["date"]
                continue
            why = "sizes" if record["config"] != sizes[part] else "code"
            print(f"         {part}: the kept result is for other {why}; running it again")
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
        subprocess.run(cmd, cwd=_common.ROOT, check=True, env=_common.worker_env())
        seconds = time.perf_counter() - part_start
        if code_hash() != code:
            raise SystemExit(
                f"the code changed while {part} ran (sktransfer/ or benchmarks/ sources); "
                "its figures would not match the published code hash: run again"
            )
        results[part], minutes[part] = json.loads(result_file.read_text()), seconds / 60
        dates[part] = f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC"
        record = {"config": sizes[part], "code": code, "seconds": seconds, "date": dates[part]}
        saved.write_text(json.dumps({**record, "result": results[part]}))
        print(f"         {part}: {seconds:.0f} s", flush=True)

    total = sum(minutes.values())
    command = "python -m benchmarks" + "".join(
        f" {shlex.quote(a)}" for a in (argv if argv is not None else sys.argv[1:])
    )
    meta = {
        **_common.machine_info(),
        "command": command,
        "code": code,
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
    # The figure sections of docs/speed.md, cache.md and finetuning.md: into docs/
    # only from a complete run; otherwise into copies next to the output.
    in_place = (complete and args.output is None) or args.write_docs
    docs_folder = _common.ROOT / "docs" if in_place else output.parent / "docs"
    for path in write_docs(results, meta, docs_folder):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
