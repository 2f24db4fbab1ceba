"""The event stream's opening: ``GET /api/metrics/stream``.

One concept: the handshake. The request's thread checks the stream's parameters, takes a
slot, writes the headers, ``retry:`` and the current snapshot (and ``event: resync`` when the
client's last id means nothing here), then hands the socket to the stream hub, which alone
writes to it from then on (README "How the stream works").
"""

from __future__ import annotations

import logging
import socket
from typing import Callable

from sse_dashboard.web.guard import grant_for, offered_token, tokens_in_use
from sse_dashboard.web.request import parse_last_event_id
from sse_dashboard.web.response import HTTPError
from sse_dashboard.web.handlers.fleet import NO_FLEET
from sse_dashboard.web.shareview import ShareView
from sse_dashboard.web.streams import format_sse, metrics_frame, resync_frame, side_frame

__all__ = ["StreamHandlers", "RETRY_MS"]

log = logging.getLogger(__name__)

RETRY_MS = 5000


class StreamHandlers:
    """``stream_metrics``, and ``stream_to_hub`` for every stream the hub writes (a status page's too): part of
    ``DashboardHandler``."""

    def stream_metrics(self) -> None:
        """Open ``text/event-stream``: headers, ``retry:``, the current snapshot (and a
        ``resync`` if the client's last id means nothing here), then hand the socket to
        the stream hub, which sends everything after (README "How the stream works")."""
        server, app = self.server, self.app
        last_event_id = parse_last_event_id(self.headers.get("Last-Event-ID"))
        if last_event_id is None:
            last_event_id = parse_last_event_id(self.query_value("lastEventId"))
        only = self.event_filter()
        with_metrics = self.query_flag("metrics", True)
        typed = self._stream_names()
        sides = ("fleet",) if self.query_flag("fleet", False) else ()  # the fleet listing too (#25)
        if sides and app.fleet is None:
            raise HTTPError(404, NO_FLEET)
        # The stored token it opens with, so that its revocation ends it (the hub checks it on joining,
        # and again whenever a token is revoked: a revocation at any moment from here on is seen).
        share = getattr(self, "share", None)
        view = ShareView(share) if share is not None else None  # a share link's session reads as its link (#26)
        if view is not None:
            if sides:
                raise HTTPError(403, "a share link does not show the fleet")
            credential = share.digest  # its revocation or expiry ends the stream, as a token's does
        else:
            grant = grant_for(server.policy, offered_token(server.policy, self.headers))
            if grant is None and tokens_in_use(server.policy):  # revoked since the access check, a moment ago
                raise HTTPError(401, "a valid token is required", (("WWW-Authenticate", "Bearer"),))
            credential = grant.digest if grant is not None else None

        def first_frames() -> tuple[list, dict]:
            snapshot, body = app.sampler.latest()
            if view is not None:
                body = view.snapshot_body(snapshot["seq"], body)
            frames = [format_sse(retry=RETRY_MS)] + ([metrics_frame(body)] if with_metrics else [])
            if sides:
                frames.append(side_frame("fleet", app.fleet.latest()))
            cursor = app.events.last_id
            epoch = self.query_value("epoch")
            if last_event_id is not None:
                if (epoch is not None and epoch != app.events_epoch) or not (
                        app.events.first_id - 1 <= last_event_id <= cursor):
                    # From another run of the server, from the future, or already evicted.
                    frames.append(resync_frame(cursor))
                else:
                    cursor = last_event_id  # the hub replays what came after it
                log.debug("stream from %s resumed after id %s", self.client_address, last_event_id)
            return frames, dict(cursor=cursor, seq=snapshot["seq"], only=only, typed=typed, metrics=with_metrics,
                                sides=sides, token=credential, view=view)

        self.stream_to_hub("stream", "poll /api/metrics instead", first_frames)
        return None

    def stream_to_hub(self, what: str, when_full: str, first_frames: Callable[[], tuple[list, dict]]) -> None:
        """Answer ``text/event-stream``: take one of ``--max-clients``' places (503 saying
        ``when_full`` when none is left), send the headers and ``first_frames()``'s frames, then hand
        the socket to the stream hub with what it returned for ``StreamHub.add``. The place is given
        back if the client goes before the hub has it (and for HEAD)."""
        hub, max_clients = self.server.hub, self.app.config.max_clients
        if not hub.reserve(max_clients):
            raise HTTPError(503, "too many stream clients (at most %d); %s" % (max_clients, when_full),
                            (("Retry-After", "10"),))
        added = False
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache, no-transform")
            self.send_header("X-Accel-Buffering", "no")  # nginx: do not buffer (sse-starlette#5)
            self.send_header("Connection", "close")  # the body ends when the connection does
            self._send_common_headers()
            self.end_headers()
            self.close_connection = True
            if self.command == "HEAD":
                return
            frames, joining = first_frames()
            # Frames are small and must go now, not when Nagle's algorithm decides.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.connection.settimeout(self.app.config.write_timeout_s)
            self.wfile.write(b"".join(frames))
            self.server.hand_off(self.connection)
            hub.add(self.connection, **joining)
            added = True
        except (socket.timeout, ConnectionError) as exc:  # gone during the handshake
            log.debug("%s to %s ended before it started: %s", what, self.client_address, exc)
        finally:
            if not added:
                hub.release()

    def _stream_names(self) -> bool:
        """True: typed events go out under their type; ``names=log`` (the page) names them all ``log``."""
        names = self.query_value("names")
        if names not in (None, "type", "log"):
            raise HTTPError(400, "names must be type (typed events under their type, the default) or log")
        return names != "log"
