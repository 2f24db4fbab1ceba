"""``python -m sse_dashboard``: the same as the ``sse-dashboard`` command."""

import sys

from sse_dashboard.cli import main

sys.exit(main())
