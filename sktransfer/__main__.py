"""``python -m sktransfer``: the same as the ``sktransfer`` command."""

import sys

from sktransfer.cli import main

if __name__ == "__main__":
    sys.exit(main())
