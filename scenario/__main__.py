"""`python3 -m scenario ...`: the command line in scenario.cli."""

import sys

from .cli import main

sys.exit(main())
