"""Write the reference outputs that tests/test_reference.py compares with.

Run from the repository root, on the version whose outputs are the reference:

    python tests/data/make_reference.py

It writes ``tests/data/reference_*.npy`` (encoder features, fine-tuner outputs and
training losses, all computed with ``cache=None`` and one torch thread) and
``tests/data/reference_*.pkl`` (a fitted encoder and a fitted fine-tuner as that
version pickles them) and ``tests/data/reference_machine.json`` (the torch version and
the CPU kernel level that computed them: bit-identity holds only on the same ones).
The cases run in one process, in a fixed order: a fine-tuner's numbers depend on
what ran before it in the process (a barely trained net amplifies the last bits of
earlier kernels' state), so the test recomputes them the same way, in a fresh process.
The inputs and settings live in :mod:`tests.reference_cases`, shared with the test,
so both sides compute the same thing.
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.reference_cases import CASES, DATA, machine, one_thread  # noqa: E402


def main(folder: Path = DATA, pickles: bool = True) -> None:
    """Compute every case, in order, in this process; save the outputs (and pickles)."""
    folder.mkdir(parents=True, exist_ok=True)
    with one_thread():
        for name, case in CASES.items():
            fitted, outputs = case()
            for key, value in outputs.items():
                np.save(folder / f"reference_{name}_{key}.npy", value, allow_pickle=False)
            if pickles and name in ("image_encoder", "image_classifier"):
                (DATA / f"reference_{name}.pkl").write_bytes(pickle.dumps(fitted, protocol=4))
    if pickles:
        (DATA / "reference_machine.json").write_text(json.dumps(machine(), indent=1) + "\n")
    written = list(folder.glob("reference_*"))
    total = sum(f.stat().st_size for f in written)
    print(f"wrote {len(written)} files, {total / 1024:.0f} KiB to {folder}")  # noqa: T201


if __name__ == "__main__":
    # ``make_reference.py OUT_DIR`` writes the outputs (no pickles) elsewhere: the test
    # computes them so, in a fresh process and in the same order as the reference.
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]), pickles=False)
    else:
        main()
