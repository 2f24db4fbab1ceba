"""``python -m sse_dashboard``: the same as the ``sse-dashboard`` command."""

import sys

from sse_dashboard.sse_server import main

sys.exit(main())
