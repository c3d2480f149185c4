"""``python -m core.bench``: the command line (``core.bench.cli``)."""

import sys

from core.bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
