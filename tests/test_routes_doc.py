"""The route table is data: every route has a handler and a rule for who may use it, and the
README documents every path with that rule."""

from conftest import ROOT
from sse_dashboard.web.handler import DashboardHandler
from sse_dashboard.web.routes import KEYED, PING, ROUTES, WRITE_METHODS, access_for


def test_every_route_names_an_existing_handler():
    for route in ROUTES:
        assert callable(getattr(DashboardHandler, route.handler)), route


def documented_routes() -> dict:
    """Every `METHOD /path` in the first column of the README's API table, with its second
    column (who may use it)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## The API"):]
    table = table[:table.index("\n\n", table.index("| method and path"))]
    rows = [line.split("|") for line in table.splitlines()[2:] if line.startswith("| `")]
    return {tuple(cells[1].strip().strip("`").split(" ", 1)): cells[2].strip() for cells in rows}


def readme_path(route) -> str:
    if not route.prefix:
        return route.path
    return route.path.rstrip("/") + "/" + ("<file>" if route.path == "/static/" else "<name>")


def test_readme_documents_every_route_and_who_may_use_it():
    documented = documented_routes()
    expected = {(route.method, readme_path(route)): route.access.name for route in ROUTES if route.path != "/index.html"}
    assert set(documented) == set(expected), set(documented) ^ set(expected)
    assert documented == expected, {k: (documented[k], expected[k]) for k in expected if documented[k] != expected[k]}


def test_handlers_are_named_verb_resource():
    for route in ROUTES:
        verbs = ("get", "post", "stream", "serve") if not route.prefix else ("serve", "delete", "push", "ping",
                                                                            "get", "post", "put")
        assert route.handler.split("_")[0] in verbs, route


def test_a_route_that_changes_state_is_checked_as_a_write():
    """POST, PUT and DELETE are writes wherever they are; a GET writes only where heartbeats and job
    pings are."""
    for route in ROUTES:
        assert route.access.write == (route.method in WRITE_METHODS or route.access in (PING, KEYED)), route


def test_the_routes_of_one_path_ask_for_the_token_the_same_way():
    """A request no route takes is checked by the rule of the path's other routes (routes.access_for):
    that is one rule only if they agree."""
    for route in ROUTES:
        for other in ROUTES:
            if other.matches(route.path) or route.matches(other.path):
                same = (route.access.token, route.access.cookie, route.access.query)
                assert same == (other.access.token, other.access.cookie, other.access.query), (route, other)


def test_a_request_no_route_takes_keeps_the_token_of_the_place_it_aims_at():
    assert access_for("PUT", "/api/metrics").token and access_for("PUT", "/api/metrics").write
    assert access_for("GET", "/api/nope").token and not access_for("GET", "/api/nope").write
    assert access_for("OPTIONS", "/api/push/job") == PING  # every method is a write where a GET is
    assert not access_for("GET", "/nope").token and not access_for("POST", "/").token
    assert access_for("POST", "/").write  # state-changing methods are checked as writes everywhere
