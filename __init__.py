"""sse-dashboard, installed: one import name, ``sse_dashboard``, for every module.

In a checkout the modules sit at the repository root and import each other by
plain names (``from events import EventLog``): ``python sse_server.py`` needs
nothing installed. Installed, the root *is* the package ``sse_dashboard``
(pyproject.toml maps it so), and those plain names must not become top-level
modules of their own: ``events``, ``metrics``, ``guard`` ... belong to other
projects on PyPI. So this file loads the modules in dependency order, and while
it does, lends each plain name to the module just loaded (``sys.modules``);
afterwards it takes every name back, restoring whatever another package had
there. No module carries an import fallback, and nothing named ``events`` is
left behind.
"""

from __future__ import annotations

import importlib
import sys

# Each module only imports the ones before it.
_MODULES = ("events", "devices", "metrics", "guard", "storage", "exports", "streams", "alerts", "heartbeats", "pushgateway",
            "statsd_listener", "notify", "processes", "agent_api", "api_spec", "demo", "sse_server")  # client.py imports none of them: a plain submodule


def _load() -> None:
    lent = {name: sys.modules.get(name) for name in _MODULES}
    try:
        for name in _MODULES:
            sys.modules[name] = importlib.import_module("%s.%s" % (__name__, name))
    finally:
        for name, previous in lent.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous


if __name__ != "__main__" and __package__:  # imported as the package, not run from a checkout
    _load()
    from .sse_server import __version__, build_app, main  # noqa: E402

__all__ = ["__version__", "build_app", "main"]
