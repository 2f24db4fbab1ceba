"""Prometheus remote write 1.0, encoded by hand: protobuf ``WriteRequest`` and a snappy block.

One concept: pure functions from a snapshot to the bytes a remote write receiver takes
(https://prometheus.io/docs/specs/remote_write_spec/). The runtime stays standard library only:

- the protobuf messages are four (``WriteRequest``, ``TimeSeries``, ``Label``, ``Sample``) and
  small enough to write field by field (prompb/types.proto, prompb/remote.proto);
- snappy's block format (github.com/google/snappy, format_description.txt) is a varint of the
  uncompressed length, then elements; a block made only of *literal* elements is valid snappy
  that every decoder reads. It does not compress: the bytes on the wire are the protobuf's plus
  a few bytes per 64 KiB. With the optional ``[snappy]`` extra (cramjam, the Rust snappy that
  python-snappy itself wraps) ``snappy_block`` compresses for real: about 8x fewer bytes on the
  wire for a little CPU (bench/RESULTS-remote-write.md); without it, literals.

Invariants:
- each ``TimeSeries`` carries its labels sorted by name, ``__name__`` included (the spec's
  MUST), no label with an empty value (Prometheus treats it as absent) and no label set twice
  in one request tick (Prometheus answers a duplicate with 400 and would drop the batch);
- a request is the concatenation of tick requests: protobuf appends repeated fields, so
  ``encode(a) + encode(b)`` is one ``WriteRequest`` with both ticks' series, in tick order.
"""

from __future__ import annotations

import struct
from typing import Iterable

from sse_dashboard.exposition import prometheus_families

try:  # the optional [snappy] extra: real compression; the standard library's literals otherwise
    import cramjam as _cramjam
except ImportError:
    _cramjam = None

__all__ = ["encode_write_request", "snappy_block", "snappy_literal_block", "snappy_compressor", "tick_series", "identity_labels",
           "TickEncoder", "MAX_CACHED_SERIES",
           "SNAPPY_LITERAL_MAX_BYTES"]

# Snappy's own compressor emits fragments of at most 64 KiB; a literal element may be longer
# (its length takes up to 4 bytes), but keeping to 64 KiB keeps every decoder on its common path.
SNAPPY_LITERAL_MAX_BYTES = 65536

Labels = tuple  # ((name, value), ...) sorted by name

MAX_CACHED_SERIES = 100_000  # TickEncoder's remembered label sets; past it the cache starts over


def _varint(n: int) -> bytes:
    """Protobuf's base-128 varint; a negative int64 is its 64-bit two's complement (10 bytes)."""
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload  # wire type 2: length-delimited


def _label(name: str, value: str) -> bytes:
    # Label { string name = 1; string value = 2; } -- strings must be valid UTF-8 (a lone
    # surrogate from a JSON body would not be), so one is replaced rather than sent.
    return _field_bytes(1, name.encode("utf-8", "replace")) + _field_bytes(2, value.encode("utf-8", "replace"))


def _sample(value: float, timestamp_ms: int) -> bytes:
    # Sample { double value = 1; int64 timestamp = 2; }: tag 0x09 is field 1, wire type 1 (64-bit).
    return b"\x09" + struct.pack("<d", float(value)) + b"\x10" + _varint(timestamp_ms)


def encode_write_request(series: Iterable[tuple[Labels, float]], timestamp_ms: int) -> bytes:
    """One tick as a ``WriteRequest``: a ``TimeSeries`` (labels, one sample) per series.

    >>> encode_write_request([((("__name__", "up"), ("instance", "a")), 1.0)], 1700000000000)
    """
    out = bytearray()
    sample = _sample(0.0, timestamp_ms)[9:]  # the timestamp part, the same for every series of the tick
    for labels, value in series:
        body = b"".join(_field_bytes(1, _label(name, text)) for name, text in labels)
        body += _field_bytes(2, b"\x09" + struct.pack("<d", float(value)) + sample)
        out += _field_bytes(1, body)  # WriteRequest { repeated TimeSeries timeseries = 1; }
    return bytes(out)


def snappy_compressor() -> str:
    """Which ``snappy_block`` frames requests: ``"cramjam"`` (the [snappy] extra) or ``"literal"``."""
    return "cramjam" if _cramjam is not None else "literal"


def snappy_block(data: bytes) -> bytes:
    """``data`` in snappy's block format: compressed with the [snappy] extra when it is
    installed, else as literal elements (``snappy_literal_block``). Both are valid snappy."""
    if _cramjam is not None:
        return bytes(_cramjam.snappy.compress_raw(data))
    return snappy_literal_block(data)


def snappy_literal_block(data: bytes) -> bytes:
    """``data`` in snappy's block format, as literal elements only (valid, uncompressed)."""
    if len(data) >= 1 << 32:
        raise ValueError("a snappy block holds less than 4 GiB")
    out = bytearray(_varint(len(data)))
    view = memoryview(data)
    for start in range(0, len(data), SNAPPY_LITERAL_MAX_BYTES):
        chunk = view[start:start + SNAPPY_LITERAL_MAX_BYTES]
        n = len(chunk) - 1
        if n < 60:
            out.append(n << 2)  # tag: length-1 in the upper six bits, element type 00 (literal)
        else:
            size = (n.bit_length() + 7) // 8  # 1..4 bytes of length-1 follow, little-endian
            out.append((59 + size) << 2)
            out += n.to_bytes(size, "little")
        out += chunk
    return bytes(out)


def identity_labels(snapshot: dict) -> Labels:
    """``(("url", ...), ("version", ...))`` from the snapshot's ``identity`` (``app.build_app``
    puts it there when pushing): the labels ``sse_dashboard_info`` carries, so the fleet page
    (``fleet.view``) can name each dashboard's version and link to its own page."""
    identity = snapshot.get("identity")
    if not isinstance(identity, dict):
        return ()
    return tuple((name, identity[name]) for name in ("url", "version") if isinstance(identity.get(name), str))


def tick_series(snapshot: dict, instance: str, external_labels: Labels = ()) -> list[tuple[Labels, float]]:
    """Every series of one snapshot, named as ``GET /metrics`` names it, with ``instance`` (and
    any external labels) added: ``[(sorted labels, value), ...]``; ``sse_dashboard_info`` also
    carries the dashboard's ``url`` and ``version`` (``identity_labels``).

    A series' own label that an added one would replace keeps its value as ``exported_<name>``
    (Prometheus' rule for a scraped target's clashing labels, honor_labels: false)."""
    added = (("instance", instance),) + tuple(external_labels)
    added_names = {name for name, _ in added}
    seen: set[Labels] = set()
    out: list[tuple[Labels, float]] = []
    identity = identity_labels(snapshot)
    for family, _kind, _help, samples in prometheus_families(snapshot):
        for labels, value in samples:
            if family == "sse_dashboard_info":
                labels = tuple(labels) + identity
            own = [("exported_" + k if k in added_names else k, str(v)) for k, v in labels]
            merged = dict(own)
            merged.update(added)
            merged["__name__"] = family
            key = tuple(sorted((k, v) for k, v in merged.items() if v != ""))
            if key in seen:
                continue  # two rows that differ only by empty labels are one series to Prometheus
            seen.add(key)
            out.append((key, value))
    return out


class TickEncoder:
    """``encode_write_request(tick_series(snapshot, ...), ts)`` byte for byte, at a fraction of
    the CPU: a series' labels are named, merged, sorted and encoded once, then remembered (its
    ``TimeSeries`` prefix), so a tick costs a lookup and a value a series (bench/remote_write_wire.py).

    The cache is keyed by what ``prometheus_families`` gives (family, own labels), plus the
    identity the info series carries; it holds at most ``MAX_CACHED_SERIES`` label sets and
    starts over past that (series come and go: a gauge deleted must not be held for ever)."""

    def __init__(self, instance: str, external_labels: Labels = ()) -> None:
        self._added = (("instance", instance),) + tuple(external_labels)
        self._added_names = {name for name, _ in self._added}
        self._cache: dict = {}
        self._tail = b""

    def encode(self, snapshot: dict, timestamp_ms: int) -> tuple[int, bytes]:
        """(series in the tick, its ``WriteRequest``)."""
        identity = identity_labels(snapshot)
        stamp = _sample(0.0, timestamp_ms)[9:]
        # A TimeSeries is its labels, then its Sample (field 2: 0x09, the double, the timestamp):
        # with the timestamp's length fixed, all but the value and the stamp is the series' own.
        tail = b"\x12" + _varint(9 + len(stamp)) + b"\x09"
        cache = self._cache
        if len(cache) > MAX_CACHED_SERIES or tail != self._tail:
            cache.clear()
            self._tail = tail
        seen: set = set()
        parts: list = []
        pack = struct.Struct("<d").pack
        for family, _kind, _help, samples in prometheus_families(snapshot):
            info = identity if family == "sse_dashboard_info" else ()
            for labels, value in samples:
                key = (family, tuple(labels), info)
                cached = cache.get(key)
                if cached is None:
                    cached = cache[key] = self._head(family, tuple(labels) + info, tail, len(stamp))
                series_key, head = cached
                if series_key in seen:
                    continue  # as tick_series: rows that differ only by empty labels are one series
                seen.add(series_key)
                parts += (head, pack(float(value)), stamp)
        return len(seen), b"".join(parts)

    def _head(self, family: str, labels: tuple, tail: bytes, stamp_len: int) -> tuple[Labels, bytes]:
        """The series' key (its sorted labels, as tick_series makes it) and every byte of its
        ``TimeSeries`` (the WriteRequest's field 1) before the value."""
        own = [("exported_" + k if k in self._added_names else k, str(v)) for k, v in labels]
        merged = dict(own)
        merged.update(self._added)
        merged["__name__"] = family
        key = tuple(sorted((k, v) for k, v in merged.items() if v != ""))
        encoded = b"".join(_field_bytes(1, _label(name, text)) for name, text in key) + tail
        return key, b"\x0a" + _varint(len(encoded) + 8 + stamp_len) + encoded
