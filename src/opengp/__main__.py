"""`python -m opengp` is the `opengp` command."""

import sys

from opengp.cli import main

sys.exit(main())
