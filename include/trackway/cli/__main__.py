"""``python -m trackway.cli``: the same as the ``trackway`` command."""

import sys

from trackway.cli import main

sys.exit(main())
