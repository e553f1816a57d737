"""Settings for every test and doctest: no network, quiet tokenizers."""

import os

# Tests and doctests never reach for the network: the Hub is skipped, so a
# missing model fails at once instead of after the libraries' retries.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
