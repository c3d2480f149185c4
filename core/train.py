"""``python -m core.train``: the head trainer's command line (``core.heads.cli``)."""

import sys

from core.heads.cli import main

if __name__ == "__main__":
    sys.exit(main())
