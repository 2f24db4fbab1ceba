"""The route table is data: every route has a handler, and the README documents every path."""

from conftest import ROOT
from sse_dashboard.web.server import DashboardHandler


def test_every_route_names_an_existing_handler():
    for (method, path), name in DashboardHandler.ROUTES.items():
        assert callable(getattr(DashboardHandler, name)), (method, path, name)
    for method, prefix, name in DashboardHandler.PREFIX_ROUTES:
        assert callable(getattr(DashboardHandler, name)), (method, prefix, name)


def documented_routes() -> set:
    """Every `METHOD /path` in the first column of the README's API table."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## The API"):]
    table = table[:table.index("\n\n", table.index("| method and path"))]
    rows = [line.split("|")[1].strip() for line in table.splitlines()[2:] if line.startswith("| `")]
    return {tuple(cell.strip("`").split(" ", 1)) for cell in rows}


def test_readme_documents_every_route():
    documented = documented_routes()
    expected = {(method, path) for (method, path) in DashboardHandler.ROUTES if path != "/index.html"}
    expected |= {(method, prefix.rstrip("/") + "/" + ("<file>" if prefix == "/static/" else "<name>"))
                 for method, prefix, _ in DashboardHandler.PREFIX_ROUTES}
    assert documented == expected, (documented ^ expected)


def test_handlers_are_named_verb_resource():
    for name in DashboardHandler.ROUTES.values():
        assert name.split("_")[0] in ("get", "post", "stream", "serve"), name
    for _, _, name in DashboardHandler.PREFIX_ROUTES:
        assert name.split("_")[0] in ("serve", "delete", "push"), name
