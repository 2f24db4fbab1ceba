"""The route table is data: every route has a handler, and the README documents every path."""

from conftest import ROOT
from sse_server import DashboardHandler


def test_every_route_names_an_existing_handler():
    for (method, path), name in DashboardHandler.ROUTES.items():
        assert callable(getattr(DashboardHandler, name)), (method, path, name)
    for method, prefix, name in DashboardHandler.PREFIX_ROUTES:
        assert callable(getattr(DashboardHandler, name)), (method, prefix, name)


def test_readme_documents_every_route():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for (method, path), _ in DashboardHandler.ROUTES.items():
        assert "`%s %s" % (method, path) in readme or path in readme, (method, path)
        if path.startswith("/api/"):
            assert "`%s %s`" % (method, path) in readme, (method, path)
    for method, prefix, _ in DashboardHandler.PREFIX_ROUTES:
        assert "`%s %s" % (method, prefix) in readme, prefix


def test_handlers_are_named_verb_resource():
    for name in DashboardHandler.ROUTES.values():
        assert name.split("_")[0] in ("get", "post", "stream", "serve"), name
