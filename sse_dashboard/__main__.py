"""``python -m sse_dashboard``: the same as the ``sse-dashboard`` command."""

import sys

from sse_dashboard.web.server import main

sys.exit(main())
