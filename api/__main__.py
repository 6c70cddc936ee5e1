"""`python -m segstream` is the `segstream` command."""

import sys

from .pipelines.cli import main

sys.exit(main())
