"""The HTTP server's lifecycle: the listening socket, the connections, the stop.

One concept: a ``ThreadingHTTPServer`` that serves one ``Application`` (``application.py``) with
``DashboardHandler`` (``handler.py``). ``listen()`` binds first, because the URL (port 0 means
the port the system chose) is part of what the rest is built with; ``app.build_app`` then
builds the application and hands both to ``DashboardServer``.

Invariants:
- no ``getfqdn`` on bind (a reverse-DNS stall of ~30 s, pip#13742); no ``SO_REUSEADDR`` on
  Windows, where it lets a second server share the port silently (cpython#85307);
- a socket handed to the stream hub is the hub's: the request's end does not close it;
- ``server_close`` stops in an order that loses nothing acknowledged: the streams, the
  keep-alive connections (so no request is answered by a half-stopped dashboard), then the
  application (``Application.close``), then the listening socket.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
from http.server import ThreadingHTTPServer
from typing import Any

from sse_dashboard.application import Application
from sse_dashboard.config import find_static_dir
from sse_dashboard.web.guard import Policy, RateLimiter
from sse_dashboard.web.handler import DashboardHandler
from sse_dashboard.web.mcp import McpEndpoint
from sse_dashboard.web.streams import StreamHub
from sse_dashboard.web.shares import ShareStore
from sse_dashboard.web.tokens import TokenStore

__all__ = ["DashboardServer", "listen", "listen_url"]

log = logging.getLogger(__name__)

# A listen backlog of 5 (the socketserver default) refuses connections when
# many tabs or scripts reconnect at once after a restart.
REQUEST_QUEUE_SIZE = 1024
# SO_REUSEADDR on Windows lets a second server share the port silently (cpython#85307).
REUSE_ADDRESS = os.name != "nt"


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` and listening, as ``TCPServer`` would make it, but
    without ``HTTPServer.server_bind``'s ``getfqdn()``; ``OSError`` when the port is taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if os.name == "nt" and hasattr(socket, "SO_EXCLUSIVEADDRUSE"):
            # A second double-click fails with "port in use" instead of sharing the port.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
        if REUSE_ADDRESS:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(REQUEST_QUEUE_SIZE)
    except BaseException:
        sock.close()
        raise
    return sock


def listen_url(address: tuple) -> str:
    """The URL of a bound address (a wildcard host shown as 127.0.0.1, IPv6 in brackets)."""
    host, port = address[:2]
    if ":" in host:
        host = "[%s]" % host
    elif host == "0.0.0.0":
        host = "127.0.0.1"
    return "http://%s:%d/" % (host, port)


class DashboardServer(ThreadingHTTPServer):
    """The HTTP server of one dashboard: ``app`` (the ``Application``) is what it serves, ``hub``
    the stream hub it hands streams to, ``mcp`` the agents' endpoint, ``tokens`` the scoped tokens
    (``tokens.TokenStore``; this run's only when not given), ``policy`` who may use it
    (``guard.Policy``), ``stopping`` set on shutdown, ``static_dir`` the page.

    >>> server = DashboardServer(listen("127.0.0.1", 0), app, hub, mcp)    # build_app does this
    >>> threading.Thread(target=server.serve_forever, daemon=True).start()
    >>> server.shutdown(); server.server_close()                       # from another thread

    The application's parts are also readable here (``server.registry``, ``server.events``...),
    as the README's embedding example and the tests use them.
    """

    daemon_threads = True
    request_queue_size = REQUEST_QUEUE_SIZE
    allow_reuse_address = REUSE_ADDRESS

    def __init__(self, listener: socket.socket, app: Application, hub: StreamHub, mcp: McpEndpoint,
                 tokens: TokenStore | None = None, shares: ShareStore | None = None) -> None:
        self.app = app
        self.tokens = tokens if tokens is not None else TokenStore(None)
        self.shares = shares if shares is not None else ShareStore(None)  # read-only share links (#26)
        self.hub = hub
        self.mcp = mcp
        config = app.config
        self.static_dir = (config.static_dir or find_static_dir()).resolve()
        self.stopping = threading.Event()
        self._handed_off: set[int] = set()  # ids of sockets the stream hub now owns
        # Connections a request thread holds (keep-alive ones wait there for their next request):
        # at shutdown they are cut, or a browser's next request on one would still be answered,
        # by a server whose sampler and stream hub have stopped (a stream that opens and stays silent).
        self._connections: set = set()
        self._connections_lock = threading.Lock()
        address = listener.getsockname()
        super().__init__(address, DashboardHandler, bind_and_activate=False)
        self.socket.close()  # the unbound one TCPServer made: ours is bound and listening already
        self.socket = listener
        self.server_address = address
        self.server_name = str(address[0])
        self.server_port = address[1]
        self.policy = Policy(port=self.server_port, token=config.token, allowed_hosts=config.allowed_hosts,
                             cors_origin=config.cors_origin, public_origin=config.public_url, tokens=self.tokens,
                             writes=RateLimiter(config.post_rate_per_s, burst=max(10.0, 2 * config.post_rate_per_s)))

    @property
    def url(self) -> str:
        return listen_url(self.server_address)

    # The application's parts, read-only (the README's embedding example: server.registry.inc(...)).
    config = property(lambda self: self.app.config)
    registry = property(lambda self: self.app.registry)
    events = property(lambda self: self.app.events)
    sampler = property(lambda self: self.app.sampler)
    store = property(lambda self: self.app.store)
    alerts = property(lambda self: self.app.alerts)
    heartbeats = property(lambda self: self.app.heartbeats)
    notifier = property(lambda self: self.app.notifier)
    pushes = property(lambda self: self.app.pushes)
    processes = property(lambda self: self.app.processes)
    statsd = property(lambda self: self.app.statsd)
    events_epoch = property(lambda self: self.app.events_epoch)

    def stats(self) -> dict:
        return self.app.stats()

    # --- connections ---------------------------------------------------------------------

    def hand_off(self, sock: socket.socket) -> None:
        """``sock`` belongs to the stream hub now: the request's end must not close it."""
        self._handed_off.add(id(sock))
        self.untrack(sock)

    def track(self, sock: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(sock)

    def untrack(self, sock: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(sock)

    def shutdown_request(self, request: Any) -> None:
        if id(request) in self._handed_off:
            self._handed_off.discard(id(request))
            return
        super().shutdown_request(request)

    # --- the stop ------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop serving (streams are closed by ``server_close``)."""
        self.stopping.set()
        # serve_forever() sees the stop only between waits of up to its poll interval (0.5 s).
        # On Linux, shutting the listening socket's read side ends every wait at once (and
        # refuses new connections, which could only get 503 now); elsewhere it raises and the
        # poll interval stands. A shorter poll would cost a third more CPU when idle.
        try:
            self.socket.shutdown(socket.SHUT_RD)
        except OSError:
            pass
        super().shutdown()

    def server_close(self) -> None:
        """Stop, writing everything acknowledged: the streams and connections end, then the
        application stops (the registry takes no more updates: a request still running gets
        503) and storage writes its final state."""
        self.stopping.set()
        self.hub.stop()
        with self._connections_lock:
            connections, self._connections = list(self._connections), set()
        for sock in connections:  # keep-alive connections idle in a request thread
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.app.close()
        super().server_close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, socket.timeout)):
            log.debug("client %s went away: %s", client_address, exc)
        else:
            log.exception("unexpected error serving %s", client_address)
