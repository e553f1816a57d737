"""The ``sktransfer`` command line: entry point and dispatch."""

import subprocess
import sys

import pytest

from sktransfer import __version__
from sktransfer.cli import main


def test_version_is_printed(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"sktransfer {__version__}"


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: sktransfer" in capsys.readouterr().err


def test_python_dash_m_runs_the_same_command():
    done = subprocess.run(
        [sys.executable, "-m", "sktransfer", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"sktransfer {__version__}"
