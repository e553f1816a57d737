"""The ``sktransfer`` command line.

Each sub-command lives in its own module of this package and is listed in
``COMMANDS``; the module defines ``add_arguments(parser)`` (the command's
options, on an :class:`argparse.ArgumentParser`) and ``run(args) -> int`` (the
exit status). Modules are imported only when their command runs, so
``sktransfer --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "embed": (
        "sktransfer.cli._embed",
        "embed a CSV/Parquet column or a folder of images into Parquet, streaming and resumable",
    ),
    "report": ("sktransfer.cli._report", "does transfer help on this data? (a transfer report)"),
}


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of ``sktransfer`` with every registered sub-command."""
    from sktransfer import __version__

    parser = argparse.ArgumentParser(
        prog="sktransfer",
        description="Transfer learning for scikit-learn, from the command line.",
    )
    parser.add_argument("--version", action="version", version=f"sktransfer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in sorted(COMMANDS.items()):
        command = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``sktransfer`` with ``argv`` (``sys.argv[1:]`` by default); return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return int(importlib.import_module(COMMANDS[args.command][0]).run(args) or 0)
