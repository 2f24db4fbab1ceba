"""Run the dashboard from a checkout: ``python sse_server.py`` (``--help`` for the options).

A face over the package ``sse_dashboard`` (the code lives there; see its ``__init__.py`` for
the map), kept at the root so that ``python sse_server.py``, ``start_sse_dashboard.bat`` and
the README's embedding example work with nothing installed. Not installed: once installed,
the command is ``sse-dashboard`` (or ``python -m sse_dashboard``) and the import is
``sse_dashboard``.

    >>> from sse_server import build_app          # embedding, from a checkout
    >>> server = build_app(port=0)
"""

import sys

from sse_dashboard import __version__
from sse_dashboard.app import build_app
from sse_dashboard.cli import main
from sse_dashboard.config import Config
from sse_dashboard.web.server import DashboardServer

__all__ = ["__version__", "Config", "DashboardServer", "build_app", "main"]

if __name__ == "__main__":
    sys.exit(main())
