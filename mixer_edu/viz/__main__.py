"""`python -m mixer_edu.viz CHECKPOINT --out DIR`: see `mixer_edu.viz.cli`."""

import sys

from ..support.errors import exit_status
from .cli import main

if __name__ == "__main__":
    sys.exit(exit_status(main()))
