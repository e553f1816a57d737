"""Throughput on long texts: truncation against chunking, and the direct call.

    python -m benchmarks.long_texts                 # -> docs/speed.md (generated:speed-long-texts)
    python -m benchmarks.long_texts --quick         # tiny sizes -> build/long_texts.md

Texts: VADER movie-review sentences joined, in the order of the corpus, into
texts of about ``--words`` words each (far past all-MiniLM-L6-v2's limit of
256 tokens). Rows: ``SentenceTransformer.encode`` (the direct call, which cuts
every text at the limit), ``TextEncoder`` cutting at the limit
(``long_texts="truncate"``, the default; float32 and the default precision) and
``TextEncoder(long_texts="chunk")``, which encodes every window of every text
and pools them. Each system runs in its own fresh process
(``benchmarks._speed_worker``): one untimed call, then ``--repeats`` timed
calls; the table gives texts/s and input tokens/s (the tokens of the whole
texts, as the tokenizer counts them, read or not), median and min–max.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from benchmarks import _common
from benchmarks import _markdown as md

ROOT = Path(__file__).resolve().parents[1]
BLOCK = "speed-long-texts"
SYSTEMS = {
    "st": "`SentenceTransformer.encode` (direct call; cuts at 256 tokens)",
    "ours-float32": "sktransfer `TextEncoder(precision='float32')`, cuts at 256 tokens",
    "ours": "sktransfer `TextEncoder()` (default precision), cuts at 256 tokens",
    "ours-chunk": "sktransfer `TextEncoder(long_texts='chunk')` (default precision), every window",
}


def long_texts(n: int, words: int) -> list[str]:
    """``n`` distinct texts of about ``words`` words: consecutive movie-review sentences."""
    texts, _, domains = _common.vader_arrays()
    sentences = [str(t) for t, d in zip(texts, domains, strict=True) if d == "movie_reviews"]
    out, current, i = [], [], 0
    while len(out) < n:
        current.append(sentences[i % len(sentences)])
        i += 1
        if sum(len(s.split()) for s in current) >= words:
            out.append(" ".join(current))
            current = []
    return out


def token_count(texts: list[str]) -> int:
    from sentence_transformers import SentenceTransformer

    tokenizer = SentenceTransformer(_common.text_model_folder(), device="cpu").tokenizer
    return sum(len(ids) for ids in tokenizer(texts, verbose=False)["input_ids"])


def run(n: int, words: int, repeats: int, workdir: Path) -> dict:
    texts = long_texts(n, words)
    config = workdir / "long.json"
    config.write_text(json.dumps({"kind": "text", "inputs": texts, "repeats": repeats}))
    rows = {}
    for system in SYSTEMS:
        report = workdir / f"long-{system}.json"
        _common.run_worker("benchmarks._speed_worker", [system, str(config), str(report)])
        rows[system] = json.loads(report.read_text())["rows"][system]["seconds"]
        print(f"  {system}: {[round(s, 2) for s in rows[system]]} s", flush=True)
    return {
        "n": len(texts),
        "words": words,
        "tokens": token_count(texts),
        "repeats": repeats,
        "seconds": rows,
    }


def render(result: dict, meta: dict) -> str:
    n, tokens = result["n"], result["tokens"]
    header = ["variant", "texts/s (median)", "min–max", "input tokens/s (median)", "vs direct call"]
    direct = n / _common.median(result["seconds"]["st"])
    rows = []
    for system, label in SYSTEMS.items():
        seconds = result["seconds"][system]
        rate = n / _common.median(seconds)
        rows.append(
            [
                label,
                md.number(rate, 1),
                md.spread([n / s for s in seconds]),
                md.number(tokens / _common.median(seconds), 0),
                md.ratio(rate, direct),
            ]
        )
    st = [n / s for s in result["seconds"]["st"]]
    ours = [n / s for s in result["seconds"]["ours"]]
    chunk = _common.median(result["seconds"]["ours-chunk"]) / _common.median(
        result["seconds"]["ours"]
    )
    versus = md.versus("`TextEncoder()`", ours, "the direct call", st, "texts/s")
    verdict = (
        f"Cutting at the limit, {versus}. "
        f"Chunking reads every token of every text ({tokens / n:,.0f} tokens per text on "
        f"average instead of at most 256) and takes {chunk:.1f}× the time of cutting."
    )
    intro = (
        f"{n} texts of about {result['words']} words ({tokens:,} tokens in all), "
        "all-MiniLM-L6-v2, batch 32; every system in its own fresh process, one untimed "
        f"call, then {result['repeats']} timed calls."
    )
    return "\n\n".join(
        [
            "### Throughput: long texts",
            intro,
            md.table(header, rows),
            verdict,
            md.generated_note(meta),
        ]
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes -> build/")
    parser.add_argument("--n", type=int, default=64, help="texts")
    parser.add_argument("--words", type=int, default=1000, help="words per text")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.words, args.repeats = 4, 400, 1
    meta = _common.script_meta("benchmarks.long_texts", argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.n, args.words, args.repeats, Path(tmp))
    _common.publish(render(result, meta), BLOCK, "long_texts", to_docs=not args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
