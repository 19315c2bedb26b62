"""`python -m mixer_edu.viz CHECKPOINT --out DIR`: see `mixer_edu.viz.cli`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
