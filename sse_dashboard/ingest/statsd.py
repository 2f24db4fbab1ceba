"""StatsD in: the line protocol over UDP, and newline-delimited over TCP on the same port.

One concept: turning StatsD lines into the registry's counters and gauges.

    name:value|c[|@rate]       a counter; the value is divided by the sample rate
    name:value|g               a gauge; "+3" and "-3" move it instead of setting it
    name:value|ms, |h, |d      timings (histograms, distributions): per interval,
                               name_count, _min, _max, _mean, _p50, _p90, _p99 gauges
    name:value|s               a set: name = distinct values seen in the interval
    ...|#key:value,flag        DogStatsD tags: labels, name{key="value",flag="true"}

Invariants:
- names become Prometheus-valid: any character but ``[a-zA-Z0-9_:]`` becomes
  ``_`` (``api.latency`` -> ``api_latency``), as the Prometheus statsd_exporter does;
- a malformed line is counted (``server.statsd_malformed``) and skipped; a line
  refused by the registry's limits, or left unfinished when its TCP connection
  closed, is counted in ``statsd_dropped``; nothing a sender does raises out of
  this module;
- every warning is at most one log line per cause a minute, and the next one says
  how many were only counted in between;
- memory is bounded: timing values and set members kept per name and interval,
  names waiting for a flush, TCP connections and line length all have caps;
- no sender can lock others out: at the TCP cap a new sender closes the one that
  has gone longest without a whole line (after applying what it sent), and that
  is counted in ``statsd_tcp_closed``.
"""

from __future__ import annotations

import logging
import math
import random
import re
import selectors
import socket
import threading
import time
from typing import Any, Callable

from sse_dashboard.registry import MAX_NAME_CHARS, MetricsRegistry, RegistrySealed, labeled_name

__all__ = ["StatsdAggregator", "StatsdListener", "parse_address", "DEFAULT_STATSD_PORT"]

log = logging.getLogger(__name__)

DEFAULT_STATSD_PORT = 8125
MAX_VALUES_PER_TIMER = 10_000   # per interval; past it a uniform sample is kept (count, min, max stay exact)
MAX_SET_MEMBERS = 10_000
MAX_SET_MEMBERS_TOTAL = 100_000  # all sets together, per interval
MIN_SAMPLE_RATE = 1e-6          # @5e-324 would make one line count as infinity
MAX_PENDING_NAMES = 1000        # timers and sets waiting for the next flush
MAX_TCP_CONNECTIONS = 64        # at the cap, a new sender closes the one longest without a whole line
MAX_LINE_BYTES = 8192
RECV_BYTES = 65536
MAX_DRAIN_READS = 16            # what a sender closed for room still gets read: up to 1 MiB
WARN_EVERY_S = 60.0
TIMER_STATS = ("count", "min", "max", "mean", "p50", "p90", "p99")
_BAD_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_:]")
_BAD_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")


class Malformed(ValueError):
    pass


class _Warnings:
    """At most one log line per cause every ``every_s``; the lines held back are counted and
    the next line of that cause says how many (a flood of bad input must not flood the log)."""

    def __init__(self, clock: Callable[[], float], every_s: float = WARN_EVERY_S) -> None:
        self._clock = clock
        self._every_s = every_s
        self._lock = threading.Lock()
        self._logged_at: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warning(self, cause: str, message: str, *args: Any) -> None:
        self.log(logging.WARNING, cause, message, *args)

    def log(self, level: int, cause: str, message: str, *args: Any, exc_info: bool = False) -> None:
        now = self._clock()
        with self._lock:
            if now - self._logged_at.get(cause, -math.inf) < self._every_s:
                self._held[cause] = self._held.get(cause, 0) + 1
                return
            self._logged_at[cause] = now
            held = self._held.pop(cause, 0)
        note = "; %d more since the last such line" % held if held else ""
        log.log(level, message + "%s", *args, note, exc_info=exc_info)


def parse_address(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``"8125"``, ``":8125"``, ``"0.0.0.0:8125"`` or ``"[::1]:8125"`` -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = default_host, text
    host = host.strip("[]") or default_host
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("--statsd takes [HOST:]PORT, e.g. 8125 or 127.0.0.1:8125")
    return host, int(port)


def _metric_name(raw: str) -> str:
    name = _BAD_NAME_CHARS.sub("_", raw.strip())
    if not name:
        raise Malformed("empty name")
    return "_" + name if name[0].isdigit() else name


def _labels(tags: str) -> dict:
    labels = {}
    for tag in tags.split(","):
        key, sep, value = tag.strip().partition(":")
        key = _BAD_LABEL_CHARS.sub("_", key)
        if not key:
            continue
        if key[0].isdigit() or key.startswith("__"):
            key = "tag_" + key
        labels[key] = value if sep else "true"
    return labels


# StatsD names have a budget of their own (no token guards this door), and a line is
# nobody's acknowledged write: it is kept on disk at the next tick, not one commit a line.
_UNACKNOWLEDGED = {"door": "statsd", "durable": False}


class StatsdAggregator:
    """Lines in, registry updates out; timings and sets summed up at each ``flush()``.

    >>> agg = StatsdAggregator(registry)
    >>> agg.feed(b"jobs:1|c\\nlatency:12|ms|#route:home")
    >>> agg.flush()      # the sampler calls this before each sample
    """

    def __init__(self, registry: MetricsRegistry, clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        self.registry = registry
        self._clock = clock
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        # (base, labels) -> [count, min, max, sum, seen, values]
        self._timers: dict[tuple, list] = {}
        self._sets: dict[tuple, set] = {}
        self._last_timers: set[tuple] = set()  # keys that had values in the interval before
        self._last_sets: set[tuple] = set()
        self.lines = 0
        self.malformed = 0
        self.dropped = 0
        self.tcp_closed = 0
        self._members = 0               # set members held this interval, all sets together
        self._count_lock = threading.Lock()
        self._warnings = _Warnings(clock)

    def stats(self) -> dict:
        return {"statsd_lines": self.lines, "statsd_malformed": self.malformed, "statsd_dropped": self.dropped,
                "statsd_tcp_closed": self.tcp_closed}

    def count_unfinished_line(self) -> None:
        """A TCP connection closed in the middle of a line: the line is lost, so it is counted."""
        self._count("dropped")

    def count_closed_sender(self) -> None:
        """A TCP sender was closed to make room for a new one."""
        self._count("tcp_closed")

    def feed(self, data: bytes) -> None:
        for line in data.splitlines():
            if line.strip():
                self.line(line)

    def _count(self, what: str) -> None:
        with self._count_lock:  # lines arrive on the UDP thread and one thread per TCP sender
            setattr(self, what, getattr(self, what) + 1)

    def line(self, raw: bytes) -> None:
        self._count("lines")
        try:
            if len(raw) > MAX_LINE_BYTES:
                raise Malformed("longer than %d bytes" % MAX_LINE_BYTES)
            self._apply(raw.decode("utf-8").strip())
        except (Malformed, UnicodeDecodeError) as exc:
            self._count("malformed")
            self._warn("malformed", "StatsD: skipped a malformed line (%s): %r; more are only counted for a "
                       "minute (server.statsd_malformed)", exc, raw[:100])
        except RegistrySealed:
            pass  # stopping
        except ValueError as exc:  # the registry's limits: too many names, a number too large
            self._count("dropped")
            self._warn("dropped", "StatsD: a line was refused (%s); more are only counted for a minute "
                       "(server.statsd_dropped)", exc)
        except Exception:  # a bug here must not stop the listener: count the line, say it once a minute
            self._count("malformed")
            self._warnings.log(logging.ERROR, "bug", "StatsD: a line could not be handled: %r", raw[:100],
                               exc_info=True)

    def _apply(self, line: str) -> None:
        name_part, sep, rest = line.partition(":")
        if not sep:
            raise Malformed("no ':' after the name")
        sections = rest.split("|")
        if len(sections) < 2:
            raise Malformed("no '|type'")
        values, kind = sections[0].split(":"), sections[1].strip()
        rate, labels = 1.0, {}
        for section in sections[2:]:
            if section.startswith("@"):
                rate = _number(section[1:])
                if not MIN_SAMPLE_RATE <= rate <= 1:
                    raise Malformed("sample rate must be from %g to 1" % MIN_SAMPLE_RATE)
            elif section.startswith("#"):
                labels = _labels(section[1:])
            # other DogStatsD sections (|c:container, |T timestamp) are ignored
        base = _metric_name(name_part)
        if kind == "c":
            total = _rounded(sum(_number(v) for v in values) / rate)
            if total < 0:
                raise Malformed("a counter only goes up")
            self.registry.update(counters={labeled_name(base, labels): total}, **_UNACKNOWLEDGED)
        elif kind == "g":
            for value in values:
                value = value.strip()
                name = labeled_name(base, labels)
                if value[:1] in "+-" and value[:1]:
                    self.registry.update(gauge_deltas={name: _number(value)}, **_UNACKNOWLEDGED)
                else:
                    self.registry.update(gauges={name: _number(value)}, **_UNACKNOWLEDGED)
        elif kind in ("ms", "h", "d"):
            self._time(base, labels, [_number(v) for v in values], rate)
        elif kind == "s":
            self._set(base, labels, [v.strip() for v in values])
        else:
            raise Malformed("unknown type %r" % kind[:10])

    def _time(self, base: str, labels: dict, values: list, rate: float) -> None:
        key = (base, tuple(sorted(labels.items())))
        _check_name(base + "_count", labels)  # the longest name it makes: a bad one fails now, not at the flush
        with self._lock:
            timer = self._timers.get(key)
            if timer is None:
                self._check_room(key)
                timer = self._timers[key] = [0.0, math.inf, -math.inf, 0.0, 0, []]
            for value in values:
                timer[0] += 1 / rate
                timer[1] = min(timer[1], value)
                timer[2] = max(timer[2], value)
                timer[3] += value
                timer[4] += 1
                kept = timer[5]
                if len(kept) < MAX_VALUES_PER_TIMER:
                    kept.append(value)
                else:  # reservoir sampling: every value seen has the same chance to be kept
                    slot = self._rng.randrange(timer[4])
                    if slot < MAX_VALUES_PER_TIMER:
                        kept[slot] = value

    def _set(self, base: str, labels: dict, members: list) -> None:
        key = (base, tuple(sorted(labels.items())))
        _check_name(base, labels)
        with self._lock:
            seen = self._sets.get(key)
            if seen is None:
                self._check_room(key)
                seen = self._sets[key] = set()
            for member in members:
                if len(seen) < MAX_SET_MEMBERS and self._members < MAX_SET_MEMBERS_TOTAL and member[:200] not in seen:
                    seen.add(member[:200])
                    self._members += 1

    def _check_room(self, key: tuple) -> None:
        if len(self._timers) + len(self._sets) >= MAX_PENDING_NAMES:
            raise ValueError("too many timers and sets in one interval (at most %d)" % MAX_PENDING_NAMES)

    def flush(self) -> None:
        """Turn the interval's timings and sets into gauges (the sampler calls this each tick).

        A timer or set that had values last interval and none now reports a count of zero
        once (its other statistics keep their last values), then is left alone."""
        with self._lock:
            timers, sets = self._timers, self._sets
            self._timers, self._sets, self._members = {}, {}, 0
            quiet_timers, self._last_timers = self._last_timers - timers.keys(), set(timers)
            quiet_sets, self._last_sets = self._last_sets - sets.keys(), set(sets)
        updates: list[dict] = []  # one registry update per timer or set: a bad one spoils only itself
        for (base, labels), (count, low, high, total, seen, kept) in timers.items():
            kept.sort()
            stats = {"count": _rounded(count), "min": low, "max": high, "mean": total / seen,
                     "p50": _quantile(kept, 0.5), "p90": _quantile(kept, 0.9), "p99": _quantile(kept, 0.99)}
            updates.append({labeled_name("%s_%s" % (base, stat), dict(labels)): stats[stat] for stat in TIMER_STATS})
        for base, labels in quiet_timers:
            updates.append({labeled_name(base + "_count", dict(labels)): 0})
        for (base, labels), members in sets.items():
            updates.append({labeled_name(base, dict(labels)): len(members)})
        for base, labels in quiet_sets:
            updates.append({labeled_name(base, dict(labels)): 0})
        for gauges in updates:
            if not all(math.isfinite(v) for v in gauges.values()):
                self._count("dropped")  # 1e308 twice: a sum past a float
                continue
            try:
                self.registry.update(gauges=gauges, **_UNACKNOWLEDGED)
            except RegistrySealed:
                return
            except ValueError as exc:
                self._count("dropped")
                self._warn("dropped", "StatsD: a timer or set was refused (%s)", exc)

    def _warn(self, cause: str, message: str, *args: Any) -> None:
        self._warnings.warning(cause, message, *args)


def _check_name(base: str, labels: dict) -> None:
    """``ValueError`` now (counted as dropped) for a name the flush could not store."""
    if len(base) > MAX_NAME_CHARS:
        raise ValueError("metric name must be at most %d characters" % MAX_NAME_CHARS)
    labeled_name(base, labels)


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise Malformed("%r is not a number" % text[:20]) from None
    if not math.isfinite(value):
        raise Malformed("values must be finite")
    return _rounded(value)


def _rounded(value: float) -> float | int:
    """3.0 -> 3, so a count or a whole value reads as one (within float's exact range)."""
    return int(value) if float(value).is_integer() and abs(value) <= 2 ** 53 else value


def _quantile(values: list, q: float) -> float:
    """The nearest-rank quantile of sorted ``values``."""
    return values[max(0, math.ceil(q * len(values)) - 1)]


class _Sender:
    """One TCP connection: its socket, the line it has not finished, when it last sent a whole line."""

    __slots__ = ("sock", "pending", "skipping", "last_line_at")

    def __init__(self, sock: socket.socket, now: float) -> None:
        self.sock = sock
        self.pending = b""
        self.skipping = False  # inside a line that was too long: drop up to its newline
        self.last_line_at = now


class StatsdListener:
    """UDP and TCP sockets on one port, read by two threads, fed to an aggregator.

    The sockets are bound in the constructor, so a taken port is an ``OSError`` at once.
    One thread reads every TCP sender through a selector (at most ``max_connections`` of
    them, ``MAX_TCP_CONNECTIONS`` by default). At the cap a new sender closes the one that
    has gone longest without a whole line: a byte now and then does not keep a slot, so
    nobody can hold every slot with slow or idle connections. ``clock`` (monotonic seconds)
    times the warnings; tests pass their own."""

    def __init__(self, aggregator: StatsdAggregator, host: str, port: int, *,
                 max_connections: int = MAX_TCP_CONNECTIONS, clock: Callable[[], float] = time.monotonic) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.aggregator = aggregator
        self._max_connections = max_connections
        self._clock = clock
        self._warnings = _Warnings(clock)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # Port 0 (tests): a free UDP port whose TCP twin may be taken; try a few.
        for attempt in range(50 if port == 0 else 1):
            self.udp = socket.socket(family, socket.SOCK_DGRAM)
            self.tcp = socket.socket(family, socket.SOCK_STREAM)
            try:
                if hasattr(socket, "SO_EXCLUSIVEADDRUSE"):  # Windows: no silent sharing of the port
                    self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
                    self.udp.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
                else:  # POSIX: restart at once despite connections in TIME_WAIT (TCP only: on UDP
                    # it would let a second listener share the port)
                    self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                self.udp.bind((host, port))
                bound = self.udp.getsockname()[1]
                self.tcp.bind((host, bound))
                self.tcp.listen()  # the system's default backlog: 64 clients reconnecting at once all get in
                port = bound
                break
            except OSError:
                self.udp.close()
                self.tcp.close()
                if attempt == 49 or port != 0:
                    raise
        self.address = (host, port)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # Only the TCP thread touches this. Ordered from the sender longest without a whole
        # line to the most recent one, so the one to close for room is the first.
        self._senders: dict[socket.socket, _Sender] = {}

    def start(self) -> None:
        for target, name in ((self._serve_udp, "statsd-udp"), (self._serve_tcp, "statsd-tcp")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout_s)  # the TCP thread reads what its senders sent, then closes them
        self.udp.close()
        self.tcp.close()

    def _serve_udp(self) -> None:
        self.udp.settimeout(0.5)
        while not self._stop.is_set():
            try:
                data = self.udp.recv(65535)
            except socket.timeout:
                continue
            except OSError:  # Windows reports an earlier ICMP "port unreachable" here (WSAECONNRESET)
                if self._stop.is_set():
                    return
                continue
            self.aggregator.feed(data)

    def _serve_tcp(self) -> None:
        selector = selectors.DefaultSelector()  # at most 65 sockets: below Windows' select() limit of 512
        self.tcp.setblocking(False)
        selector.register(self.tcp, selectors.EVENT_READ)
        try:
            while not self._stop.is_set():
                for key, _ in selector.select(timeout=0.5):
                    try:
                        if key.fileobj is self.tcp:
                            self._accept(selector)
                        elif key.fileobj in self._senders:  # not closed for room earlier in this batch
                            self._receive(selector, key.data)
                    except Exception:  # one thread serves every sender: a bug must cost one connection, not all
                        self._warnings.log(logging.ERROR, "tcp-bug", "StatsD: a TCP sender could not be served",
                                           exc_info=True)
                        if key.fileobj is not self.tcp:
                            self._forget(selector, key.fileobj)
        finally:
            for sender in list(self._senders.values()):  # stopping: what they sent still counts
                self._drain(sender)
                self._close(selector, sender)
            selector.close()

    def _accept(self, selector: selectors.BaseSelector) -> None:
        try:
            sock, _ = self.tcp.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # out of file descriptors, or the peer gave up: the listener goes on
            if not self._stop.is_set():
                self._warnings.warning("accept", "StatsD: could not take a TCP sender (%s)", exc)
                self._stop.wait(0.1)  # a listener still readable after EMFILE would spin
            return
        sock.setblocking(False)
        if len(self._senders) >= self._max_connections:
            self._make_room(selector)
        sender = _Sender(sock, self._clock())
        self._senders[sock] = sender
        selector.register(sock, selectors.EVENT_READ, sender)

    def _make_room(self, selector: selectors.BaseSelector) -> None:
        """Close the sender longest without a whole line, after applying what it has sent.

        Its client sees the connection close (and reconnects, if it is a StatsD client that
        keeps a TCP connection); an unfinished line is counted as dropped."""
        quiet = next(iter(self._senders.values()))
        quiet_s = self._clock() - quiet.last_line_at
        self._drain(quiet)
        self._close(selector, quiet)
        self.aggregator.count_closed_sender()
        self._warnings.warning("full", "StatsD: %d TCP senders at once, the most; closed the one quiet longest "
                               "(%.0f s without a whole line) to make room for a new one (server.statsd_tcp_closed)",
                               self._max_connections, quiet_s)

    def _receive(self, selector: selectors.BaseSelector, sender: _Sender) -> None:
        try:
            chunk = sender.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # reset by the sender
            self._close(selector, sender)
            return
        if chunk:
            self._take(sender, chunk)
            return
        self._finish(sender)
        self._close(selector, sender)

    def _drain(self, sender: _Sender) -> None:
        """Read what has already arrived (bounded), so closing the connection loses no whole line."""
        for _ in range(MAX_DRAIN_READS):
            try:
                chunk = sender.sock.recv(RECV_BYTES)
            except OSError:  # nothing more now (BlockingIOError), or reset
                return
            if not chunk:
                self._finish(sender)
                return
            self._take(sender, chunk)

    def _take(self, sender: _Sender, chunk: bytes) -> None:
        """Apply the whole lines in ``chunk``; keep the unfinished one for the next."""
        *lines, sender.pending = (sender.pending + chunk).split(b"\n")
        if sender.skipping and lines:
            lines, sender.skipping = lines[1:], False
        whole = False
        for line in lines:
            if line.strip():
                self.aggregator.line(line)
                whole = True
        if len(sender.pending) > MAX_LINE_BYTES and not sender.skipping:  # no newline in sight: count it once
            self.aggregator.line(sender.pending)
            sender.pending, sender.skipping = b"", True
        elif sender.skipping:
            sender.pending = b""
        if whole:
            sender.last_line_at = self._clock()
            self._senders[sender.sock] = self._senders.pop(sender.sock)  # now the most recent

    def _finish(self, sender: _Sender) -> None:
        """The sender closed: its last line needs no newline (``printf 'x:1|c' | nc``)."""
        if sender.pending.strip() and not sender.skipping:
            self.aggregator.line(sender.pending)
        sender.pending = b""

    def _forget(self, selector: selectors.BaseSelector, sock: socket.socket) -> None:
        """Drop a connection whatever state a bug left it in."""
        self._senders.pop(sock, None)
        try:
            selector.unregister(sock)
        except (KeyError, ValueError):
            pass
        sock.close()

    def _close(self, selector: selectors.BaseSelector, sender: _Sender) -> None:
        if sender.pending.strip() and not sender.skipping:
            self.aggregator.count_unfinished_line()
        selector.unregister(sender.sock)
        del self._senders[sender.sock]
        sender.sock.close()
