"""What the tests of the ONNX Runtime / OpenVINO backends share.

A test module imports ``fresh_runners`` (an autouse fixture: imported into the
module, it runs around each of its tests) and parametrises by ``by_runtime``.
"""

from __future__ import annotations

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
