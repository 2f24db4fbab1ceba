"""The page and its assets: content types, HEAD, and nothing outside static/."""

import re

import pytest

from sse_dashboard.config import find_static_dir


@pytest.mark.parametrize("path, content_type", [
    ("/", "text/html; charset=utf-8"),
    ("/index.html", "text/html; charset=utf-8"),
    ("/static/app.js", "text/javascript; charset=utf-8"),
    ("/static/style.css", "text/css; charset=utf-8"),
    ("/static/favicon.svg", "image/svg+xml"),
])
def test_assets_have_the_right_content_type(server, path, content_type):
    status, headers, body = server.request("GET", path)
    assert status == 200
    assert headers["Content-Type"] == content_type
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert int(headers["Content-Length"]) == len(body) > 0


def test_page_has_a_strict_csp(server):
    _, headers, body = server.request("GET", "/")
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert b"<script>" not in body and b"http://" not in body and b"https://" not in body


def test_head_sends_length_but_no_body(server):
    status, headers, body = server.request("HEAD", "/static/app.js")
    assert status == 200 and body == b""
    assert int(headers["Content-Length"]) == (find_static_dir() / "app.js").stat().st_size


TRAVERSALS = [
    "/static/../sse_server.py",
    "/static/%2e%2e/sse_server.py",
    "/static/%2E%2E/%2E%2E/etc/passwd",
    "/static/..%2fsse_server.py",
    "/static/..%5csse_server.py",
    "/static/%5c..%5csse_server.py",
    "/static/..\\sse_server.py",
    "/static//etc/passwd",
    "/static/%2fetc%2fpasswd",
    "/static/C:/Windows/win.ini",
    "/static/C:%5cWindows%5cwin.ini",
    "/static/app.js%00.png",
    "/static/",
    "/static/.",
    "/static/./app.js",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_nothing_outside_static_can_be_reached(server, path):
    # A raw request line, exactly as written: no client-side normalisation.
    reply = server.raw(("GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" % path).encode("latin-1"))
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"404", head
    assert body == b'{"error":"not found"}'


def test_page_uses_no_html_injection_sinks_and_nothing_remote():
    sinks = re.compile(r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write|eval\(")
    remote = re.compile(r"(https?:)?//(?!www\.w3\.org/)[a-z0-9.-]+\.[a-z]{2,}", re.I)
    for path in find_static_dir().iterdir():
        text = path.read_text(encoding="utf-8")
        assert not sinks.search(text), path
        assert not remote.search(text), (path, remote.search(text))
