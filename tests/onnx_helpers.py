"""What the tests of the ONNX Runtime / OpenVINO backends share.

A test module imports ``fresh_runners`` (an autouse fixture: imported into the
module, it runs around each of its tests) and parametrises by ``by_runtime``.

An export takes seconds; a test that is not about making one can start from a
copy of one made once for its module (``make_exports``, ``copy_exports``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sktransfer._optional import optional_available

RUNTIMES = [
    "onnx",
    pytest.param(
        "openvino",
        marks=pytest.mark.skipif(
            not optional_available("openvino"), reason="openvino is not installed"
        ),
    ),
]
by_runtime = pytest.mark.parametrize("backend", RUNTIMES)


@pytest.fixture(autouse=True)
def fresh_runners(tmp_path, monkeypatch):
    """No runner survives a test; exports and start records go to a fresh data home."""
    from sktransfer import _onnx

    monkeypatch.setenv("SKTRANSFER_DATA", str(tmp_path / "data"))
    _onnx.clear_runners()
    yield
    _onnx.clear_runners()


def new_process() -> None:
    """What a fresh process has not: networks loaded by equal encoders, runners."""
    from sktransfer import _onnx
    from sktransfer._base import LOADED_NETWORKS

    LOADED_NETWORKS.clear()
    _onnx.clear_runners()


def make_exports(home: Path, *fits) -> Path:
    """A data home holding the exports that the calls in ``fits`` make (each fits an encoder).

    For a module-scoped fixture: the exports are made once, then each test that
    wants them copies them into its own data home (``copy_exports``).
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SKTRANSFER_DATA", str(home))
        try:
            for fit in fits:
                fit()
        finally:
            new_process()
    return home


def copy_exports(made: Path, home: Path) -> None:
    """Copy the exports of the data home ``made`` into ``home``, without the start records.

    A copy, not a link: a test may damage its export. A fit then finds the
    export on disk, as in a later process: it still checks it against torch
    and writes its start record.
    """
    for export in sorted((made / "onnx").glob("*/model.onnx")):
        shutil.copytree(export.parent, home / "onnx" / export.parent.name)
