"""A tiny TCP proxy for tests that can behave like a buffering proxy or antivirus:
it passes every request through, but can hold back a stream's body after its headers."""

from __future__ import annotations

import socket
import threading


class BufferingProxy:
    def __init__(self, upstream: tuple, hold_prefix: str = "/api/metrics/stream") -> None:
        self.upstream = upstream
        self.hold_prefix = hold_prefix
        self.holding = True
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.port

    def _track(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._sockets.append(sock)
        return sock

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(self._track(client),), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            head = _read_head(client)
            if head is None:
                return
            path = head.split(b" ", 2)[1].decode("latin-1")
            upstream = self._track(socket.create_connection(self.upstream))
            # One request per connection (as nginx talks to an upstream by default): the
            # server closes after answering, so the browser's next request, perhaps the
            # stream, comes on a new connection that this proxy sees from its start.
            request_head, _, rest = head.partition(b"\r\n\r\n")
            lines = [line for line in request_head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
            upstream.sendall(b"\r\n".join(lines + [b"Connection: close"]) + b"\r\n\r\n" + rest)
            if self.holding and path.startswith(self.hold_prefix):
                self._hold(upstream, client)
            else:
                threading.Thread(target=_pipe, args=(client, upstream), daemon=True).start()
                _pipe(upstream, client)
        except OSError:
            pass

    @staticmethod
    def _hold(upstream: socket.socket, client: socket.socket) -> None:
        # Forward the response headers, then swallow the body (what nginx's buffer does to SSE).
        reply = _read_head(upstream)
        if reply is None:
            return
        client.sendall(reply.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n")
        while upstream.recv(65536):
            pass
        client.close()

    def cut(self) -> None:
        """Drop every connection passing through now (a network cut); new ones still pass."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            except OSError:
                pass

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.close()
                except OSError:
                    pass


def _read_head(sock: socket.socket) -> bytes | None:
    """Bytes up to and including the end of the HTTP head (maybe a little more), or None at EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    return data


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            chunk = src.recv(65536)
            if not chunk:
                break
            dst.sendall(chunk)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
