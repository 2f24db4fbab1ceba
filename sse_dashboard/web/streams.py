"""The stream hub: one thread writes every open ``text/event-stream``.

One concept: fan-out. A request handler checks access, sends the headers, the
``retry:`` line and the current snapshot, then hands the socket to the hub with
the id of the last event the client has; its thread goes back to the pool.

Invariants:
- one thread (``stream-hub``) owns every handed-over socket, and only it writes
  to them, with non-blocking sends, so frames never interleave and no stream
  can hold up another;
- each new frame is encoded once and the same bytes go to every stream that is
  caught up;
- a stream's backlog (what its kernel buffer would not take yet) is small:
  events are queued for it only while its backlog is under ``LOW_WATER``, the
  rest wait in the event log behind its cursor. So a replay after
  ``Last-Event-ID`` is written incrementally, and memory per client is bounded;
- metrics frames are latest-wins for a stream whose backlog is past
  ``LOW_WATER``: it skips stale snapshots (one a little behind gets them all); events are never skipped silently: a stream whose cursor falls
  out of the log gets ``event: resync``, exactly as a reconnect would;
- a stream that accepts nothing for ``write_timeout_s``, or whose backlog passes
  ``max_backlog_bytes``, is dropped (counted in ``dropped``); one that was
  closed is forgotten at its next write (at the latest the heartbeat);
- ``select()`` watches only backlogged sockets, in groups below Windows' limit
  of 512 per call: the code path is the same on every OS;
- a side channel (``broadcast``: the fleet listing) is latest-wins like metrics: a stream that
  asked for it at its opening gets each new frame once, encoded once for every such stream, and
  skips one while its backlog is past ``LOW_WATER`` (the next one replaces it);
- a narrowed stream (an ``EventFilter``, ``metrics=False``) is sent exactly the
  events its filter matches, live and in a catch-up alike; its cursor moves past
  the others, and its heartbeat carries ``id:`` so a reconnect resumes from there.
  Streams with the same filter share one encoding of each step's frames.
- a stream opened with a stored token ends within one step of that token's revocation: each
  step compares the token store's ``generation`` with the last one seen, and only when it moved
  asks, for each such stream, whether its token is still kept (README "Security");
- a share link's stream (``view``: a ``shareview.ShareView``) gets each snapshot cut to the link's
  sections, cut once per sample for all that link's streams, and events only as the link shows
  them; its link's hash stands in for a token, so a revoked or expired link ends it the same way.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections import deque
from typing import Any, Callable

from sse_dashboard.events import Event, EventFilter, EventLog

__all__ = ["StreamHub", "format_sse", "HEARTBEAT_FRAME", "metrics_frame", "log_frame", "resync_frame", "side_frame"]

log = logging.getLogger(__name__)

LOW_WATER = 64 * 1024            # queue more events for a stream only below this backlog
DEFAULT_MAX_BACKLOG = 1024 * 1024
SELECT_GROUP = 500               # Windows' select() takes at most 512 sockets per call
EVENT_BATCH = 64                 # events read from the log per step of a catch-up
FRAME_CACHE = 1024               # encoded frames of the newest events, shared by catch-ups
RECENT_SNAPSHOTS = 8             # snapshots kept for streams that missed a step


def format_sse(*, data: str | None = None, event: str | None = None, id: int | str | None = None,
               retry: int | None = None, comment: str | None = None) -> bytes:
    """Encode one server-sent event frame (WHATWG HTML, "Parsing an event stream").

    >>> format_sse(event="metrics", data='{"seq":1}')
    b'event: metrics\\ndata: {"seq":1}\\n\\n'
    """
    lines = []
    if comment is not None:
        lines.extend(": " + part for part in _split_lines(comment))
    if retry is not None:
        if not isinstance(retry, int) or isinstance(retry, bool):
            raise TypeError("retry must be an int (milliseconds)")
        lines.append("retry: %d" % retry)
    if id is not None:
        lines.append("id: " + "".join(_split_lines(str(id))))
    if event is not None:
        event = "".join(_split_lines(event))
        if event == "error":
            # EventSource fires its own "error" event; a server one is indistinguishable.
            raise ValueError("an SSE event must not be named 'error'")
        lines.append("event: " + event)
    if data is not None:
        lines.extend("data: " + part for part in _split_lines(data))
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def _split_lines(text: str) -> list[str]:
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


HEARTBEAT_FRAME = format_sse(comment="ping")


def metrics_frame(body: bytes) -> bytes:
    return b"event: metrics\ndata: " + body + b"\n\n"


def side_frame(channel: str, body: bytes) -> bytes:
    """A side channel's frame (``event: fleet``): single-line JSON, no ``id:`` (as metrics)."""
    return b"event: " + channel.encode("ascii") + b"\ndata: " + body + b"\n\n"


def log_frame(event: Any) -> bytes:
    return format_sse(id=event.id, event="log", data=event.json)


def typed_frame(event: Any) -> bytes:
    """A typed event under its own name (``event: record.created``), so a page can
    ``addEventListener`` for it; an untyped one is ``event: log`` either way."""
    return format_sse(id=event.id, event=event.type, data=event.json) if event.type else log_frame(event)


def resync_frame(last_id: int) -> bytes:
    # It carries an id: that sets the browser's last-event-ID buffer (WHATWG HTML,
    # "dispatch"), so the next reconnect asks from the current id.
    return format_sse(id=last_id, event="resync", data='{"last_id":%d}' % last_id)


class _Stream:
    __slots__ = ("sock", "cursor", "seq", "backlog", "backlog_bytes", "pending_metrics", "last_write",
                 "last_progress", "only", "typed", "metrics", "told", "told_at", "sides", "token", "view")

    def __init__(self, sock: socket.socket, cursor: int, seq: int, now: float, only: EventFilter | None = None,
                 typed: bool = True, metrics: bool = True, sides: dict | None = None,
                 token: str | None = None, view: Any = None) -> None:
        self.view = view                # a share link's ShareView, or None: everything
        self.sides = sides or {}        # side channel -> the generation of its last frame queued
        self.token = token              # the hash of the stored token it was opened with, or None
        self.sock = sock
        self.cursor = cursor            # the last event id queued for it, or passed over by its filter
        self.told = cursor              # the last id the client has been sent in an ``id:`` line
        self.told_at = now
        self.only = only                # None: every event
        self.typed = typed              # typed events under their type's name (False: all as "log")
        self.metrics = metrics          # False: an events-only stream
        self.seq = seq                  # the last snapshot seq queued for it
        self.backlog: deque[bytes] = deque()
        self.backlog_bytes = 0
        self.pending_metrics: bytes | None = None  # latest-wins, queued when the backlog is empty
        self.last_write = now
        self.last_progress = now

    def queue(self, frame: bytes) -> None:
        self.backlog.append(frame)
        self.backlog_bytes += len(frame)


class Doorbell:
    """What wakes the hub from any thread: a posted event, a sample, a new stream.

    A socket pair, so the hub's one ``select()`` waits for it and for writable sockets together.
    Made before the event log and the hub, and given to both (``EventLog(on_post=doorbell.ring)``),
    so each is complete when constructed."""

    def __init__(self) -> None:
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self._w.setblocking(False)

    def ring(self) -> None:
        """Safe from any thread, never blocks."""
        try:
            self._w.send(b"\0")
        except OSError:  # the pipe is full (a wake-up is pending anyway) or closed (stopping)
            pass

    @property
    def socket(self) -> socket.socket:
        """The end to ``select()`` on for reading."""
        return self._r

    def drain(self) -> None:
        """Forget the rings so far (the hub is awake now)."""
        try:
            while self._r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            pass

    def close(self) -> None:
        for sock in (self._r, self._w):
            sock.close()


class StreamHub:
    """Every open stream, written by one thread.

    >>> doorbell = Doorbell()
    >>> events = EventLog(on_post=doorbell.ring)                     # an event goes out at once
    >>> hub = StreamHub(events, doorbell)
    >>> sampler = Sampler(..., subscribers=[store.record, hub.publish])   # each sample, once
    >>> hub.start()
    >>> hub.add(sock, cursor=events.last_id, seq=snapshot["seq"])   # from a request handler
    """

    def __init__(self, events: EventLog, doorbell: Doorbell | None = None, *,
                 heartbeat_s: float = 15.0, write_timeout_s: float = 10.0,
                 max_backlog_bytes: int = DEFAULT_MAX_BACKLOG, select_group: int = SELECT_GROUP,
                 clock: Callable[[], float] = time.monotonic, tokens: Any = None) -> None:
        self.events = events
        self.doorbell = doorbell if doorbell is not None else Doorbell()
        self.heartbeat_s = heartbeat_s
        self.write_timeout_s = write_timeout_s
        self.max_backlog_bytes = max_backlog_bytes
        self.select_group = select_group
        self._clock = clock
        self._tokens = tokens  # TokenStore or shares.Revocations: ``generation``, ``is_valid(digest)``
        self._token_generation = tokens.generation if tokens is not None else 0
        self._incoming: deque[_Stream] = deque()
        self._streams: list[_Stream] = []
        self._count_lock = threading.Lock()
        self._count = 0
        self.dropped = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cursor = events.last_id
        self._seq: int | None = None
        self._metrics: bytes | None = None
        # Every sample published, not only the latest: if two ticks land between two steps
        # (the hub was slow, or starved of CPU), neither is lost.
        self._published: deque[tuple[int, bytes]] = deque(maxlen=RECENT_SNAPSHOTS)
        self._frames: dict[int, bytes] = {}  # log-named frames of the newest events
        self._typed: dict[int, bytes] = {}   # type-named ones, for typed events only
        self._sides: dict[str, tuple[int, bytes]] = {}  # side channel -> (generation, its newest frame)
        self._wanting: dict[str, int] = {}              # side channel -> open streams that asked for it

    # --- called from other threads ---------------------------------------------------

    @property
    def clients(self) -> int:
        return self._count

    def reserve(self, limit: int) -> bool:
        """Count a stream about to be added, or False when ``limit`` are open."""
        with self._count_lock:
            if self._count >= limit:
                return False
            self._count += 1
            return True

    def release(self) -> None:
        """Give back a reservation that was not added (the client left during the handshake)."""
        with self._count_lock:
            self._count -= 1

    def add(self, sock: socket.socket, cursor: int, seq: int, only: EventFilter | None = None,
            typed: bool = True, metrics: bool = True, sides: tuple = (), token: str | None = None,
            view: Any = None) -> None:
        """Take over ``sock`` (reserved first): events after ``cursor`` (those ``only`` matches)
        and, with ``metrics``, snapshots after ``seq`` are the hub's to send; so are the side
        channels named in ``sides`` (the caller sent their current frame). ``typed=False``
        names every event ``log`` (the page's one listener); ``token``: the hash of the stored token
        it was opened with, so its revocation ends it; ``view``: a share link's ``ShareView``, which
        cuts what the stream is sent. The caller must not close the socket."""
        sock.setblocking(False)
        with self._count_lock:
            for channel in sides:
                self._wanting[channel] = self._wanting.get(channel, 0) + 1
            seen = {channel: self._sides.get(channel, (0, b""))[0] for channel in sides}
        self._incoming.append(_Stream(sock, cursor, seq, self._clock(), only, typed, metrics, seen, token, view))
        self.wake()

    def broadcast(self, channel: str, body: bytes) -> None:
        """A side channel's new JSON (the fleet listing): one frame for every stream that wants it."""
        with self._count_lock:
            generation = self._sides.get(channel, (0, b""))[0] + 1
            self._sides[channel] = (generation, side_frame(channel, body))
        self.wake()

    def wanting(self, channel: str) -> int:
        """How many open streams asked for ``channel``."""
        return self._wanting.get(channel, 0)

    def publish(self, sample: Any) -> None:
        """A new sample (a ``sampler.Sample``; the sampler hands each one here): its frame is
        made once, here, and the hub woken."""
        self._published.append((sample.seq, metrics_frame(sample.body)))
        self.wake()

    def wake(self) -> None:
        """Something new to send: safe from any thread, never blocks."""
        self.doorbell.ring()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="stream-hub", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Close every stream and end the thread."""
        self._stop.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.doorbell.close()

    # --- the hub thread --------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._wait()
                if self._stop.is_set():
                    break
                self._step()
        except Exception:  # a bug here must not leave streams open and silent
            log.exception("the stream hub failed; closing every stream")
        finally:
            for stream in list(self._streams) + list(self._incoming):
                self._close(stream)
            self._streams, self._incoming = [], deque()

    def _wait(self) -> None:
        backlogged = [s.sock for s in self._streams if s.backlog or s.pending_metrics or s.cursor < self._cursor]
        timeout = 0.5 if not backlogged else min(0.5, self.write_timeout_s / 4)
        groups = [backlogged[i:i + self.select_group] for i in range(0, len(backlogged), self.select_group)]
        try:
            select.select([self.doorbell.socket], groups[0] if groups else [], [], timeout)
        except (OSError, ValueError):
            pass  # a socket closed under us: the sends below find out which
        self.doorbell.drain()

    def _step(self) -> None:
        now = self._clock()
        while self._incoming:
            stream = self._incoming.popleft()
            if stream.token is not None and self._tokens is not None and not self._tokens.is_valid(stream.token):
                self._close(stream)  # revoked while it was opening, maybe before the last generation seen
            else:
                self._streams.append(stream)
        self._end_revoked()
        recent = list(self._published)
        if recent:
            self._seq, self._metrics = recent[-1]
        before = self._cursor
        first = self.events.first_id
        new_events = self.events.since(before)
        # If events came and went before this step saw them, no stream may take the
        # shared frames as "everything new": each catches up, and so learns of the gap.
        in_order = before >= first - 1  # (and a burst larger than LOW_WATER is sent by catching up too)
        if new_events:
            for event in new_events:
                self._frames[event.id] = log_frame(event)
                if event.type:
                    self._typed[event.id] = typed_frame(event)
            self._cursor = new_events[-1].id
            if len(self._frames) > 2 * FRAME_CACHE:
                for old in sorted(self._frames)[:-FRAME_CACHE]:
                    del self._frames[old]
                    self._typed.pop(old, None)
        with self._count_lock:
            sides = dict(self._sides)
        shared: dict[tuple, bytes] = {}  # (filter, typed, share view) -> this step's frames, joined once
        cuts: dict[tuple, bytes] = {}    # (share view, seq) -> that sample's frame as the link shows it
        kept = []
        for stream in self._streams:
            if in_order and stream.cursor == before:
                key = (stream.only, stream.typed, stream.view)
                frames = shared.get(key)
                if frames is None:
                    frames = shared[key] = b"".join(self._frame_for(stream, e) for e in new_events
                                                    if stream.only is None or stream.only.matches(e))
                if stream.backlog_bytes + len(frames) <= LOW_WATER:
                    if frames:
                        stream.queue(frames)
                    stream.cursor = self._cursor
            if self._seq is None:
                pass  # no sample published yet: nothing to send or to skip
            elif not stream.metrics:
                stream.seq = self._seq
            elif stream.seq < self._seq:  # (a stream opened on a sample not handed to the hub yet is ahead)
                for seq, frame in recent:
                    if seq <= stream.seq:
                        continue
                    if stream.view is not None:  # cut once a step for every stream of that link
                        frame = cuts.get((stream.view, seq)) or cuts.setdefault(
                            (stream.view, seq), stream.view.snapshot_frame(seq, frame))
                    if stream.backlog_bytes + len(frame) <= LOW_WATER:
                        stream.queue(frame)  # a reader a little behind still gets every snapshot
                        stream.pending_metrics = None
                    else:
                        # far behind: only the newest waits
                        stream.pending_metrics = self._metrics if stream.view is None else \
                            stream.view.snapshot_frame(self._seq, self._metrics)
                        break
                stream.seq = self._seq
            for channel, queued in stream.sides.items():
                generation, frame = sides.get(channel, (0, b""))
                if generation > queued:
                    if stream.backlog_bytes + len(frame) <= LOW_WATER:
                        stream.queue(frame)
                    stream.sides[channel] = generation  # (skipped when far behind: the next one replaces it)
            if (stream.only is not None and stream.cursor > stream.told and stream.cursor >= self._cursor
                    and now - stream.told_at >= self.heartbeat_s):
                # Its filter passed over events since the last one it was sent: an ``id:`` line (no
                # data, so no event fires) moves the client's Last-Event-ID up to its cursor, so a
                # reconnect need not replay, or lose to eviction, what it never wanted. On its own
                # clock: a stream with metrics frames is never idle long enough for a heartbeat.
                stream.queue(format_sse(comment="ping", id=stream.cursor))
                stream.told, stream.told_at = stream.cursor, now
            elif (not stream.backlog and stream.pending_metrics is None and stream.cursor >= self._cursor
                    and now - stream.last_write >= self.heartbeat_s):
                stream.queue(HEARTBEAT_FRAME)
            if self._send(stream, now):
                kept.append(stream)
        self._streams = kept

    def _end_revoked(self) -> None:
        """Close the streams whose token was revoked since the last step (none, cheaply, if none was)."""
        if self._tokens is None:
            return
        generation = self._tokens.generation
        if generation == self._token_generation:
            return
        self._token_generation = generation
        kept = []
        for stream in self._streams:
            if stream.token is not None and not self._tokens.is_valid(stream.token):
                log.debug("stream closed: its token was revoked")
                self._close(stream)
            else:
                kept.append(stream)
        self._streams = kept

    def _frame_for(self, stream: _Stream, event: Event) -> bytes:
        """The event's frame for this stream: shared, or as its share link shows it (b"": not at all)."""
        if stream.view is None:
            return self._frame(event, stream.typed)
        data = stream.view.event_json(event)
        if data is None:
            return b""
        return format_sse(id=event.id, event=event.type if stream.typed and event.type else "log", data=data)

    def _frame(self, event: Event, typed: bool) -> bytes:
        if typed and event.type:
            frame = self._typed.get(event.id)
            return frame if frame is not None else typed_frame(event)
        frame = self._frames.get(event.id)
        return frame if frame is not None else log_frame(event)

    def _send(self, stream: _Stream, now: float) -> bool:
        """Queue and send until the socket is full or the stream has everything; False once it is gone."""
        while True:
            if stream.cursor < self._cursor:
                self._catch_up(stream)
            if not self._flush(stream, now):
                return False
            if stream.backlog or stream.cursor >= self._cursor:
                return True  # its kernel buffer is full (select says when it drains), or it is caught up

    def _catch_up(self, stream: _Stream) -> None:
        """Queue the events after a stream's cursor, a batch at a time while its backlog is small."""
        while stream.backlog_bytes < LOW_WATER and stream.cursor < self._cursor:
            if stream.cursor < self.events.first_id - 1:
                # What it has not seen is gone from the log: tell it, as a reconnect would be told.
                stream.queue(resync_frame(self._cursor))
                stream.cursor = self._cursor
                return
            batch = self.events.since(stream.cursor, limit=EVENT_BATCH)
            if not batch:
                stream.cursor = self._cursor
                return
            for event in batch:
                if stream.backlog_bytes >= LOW_WATER:
                    return  # the rest waits in the log: a replay is written as the client reads
                if stream.only is None or stream.only.matches(event):
                    frame = self._frame_for(stream, event)
                    if frame:
                        stream.queue(frame)
                stream.cursor = event.id

    def _flush(self, stream: _Stream, now: float) -> bool:
        """Send what the socket takes now; False when the stream is finished (closed or dropped)."""
        try:
            while True:
                if not stream.backlog:
                    if stream.pending_metrics is None:
                        break
                    stream.queue(stream.pending_metrics)
                    stream.pending_metrics = None
                data = stream.backlog[0]
                sent = stream.sock.send(data)
                stream.last_write = stream.last_progress = now
                stream.backlog_bytes -= sent
                if sent < len(data):
                    stream.backlog[0] = data[sent:]
                    break
                stream.backlog.popleft()
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:  # reset, broken pipe, aborted (WinError 10053/10054)
            log.debug("stream closed by the client: %s", exc)
            self._close(stream)
            return False
        if not stream.backlog:
            stream.last_progress = now
        elif now - stream.last_progress > self.write_timeout_s or stream.backlog_bytes > self.max_backlog_bytes:
            log.debug("stream dropped: it took nothing for %.0f s or fell %d bytes behind",
                      now - stream.last_progress, stream.backlog_bytes)
            self.dropped += 1
            self._close(stream)
            return False
        return True

    def _close(self, stream: _Stream) -> None:
        try:
            stream.sock.close()
        except OSError:
            pass
        with self._count_lock:
            self._count -= 1
            for channel in stream.sides:
                self._wanting[channel] -= 1
