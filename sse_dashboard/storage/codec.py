"""One series' values of one chunk as bytes, and back, exactly (#23).

One concept: a pure function pair, ``encode(values) -> bytes`` and ``decode(data) -> list``,
with no I/O and no state. The chunk's timestamps are shared by every series and stored apart
(``encode_timestamps`` is the same codec over integer milliseconds).

>>> decode(encode([1, 2, None, 3.5, float("nan")]))
[1, 2, None, 3.5, nan]

What comes back is what went in, of the same type and, for floats, the same bit pattern:
``None`` stays ``None`` (no value at this tick); ``int`` stays ``int`` at any size (beyond
int64 too); ``float`` stays ``float``, NaN payloads, the sign of ``-0.0``, ``±inf`` and
subnormals included. ``bool`` is an ``int`` and comes back as ``0``/``1``; anything else is a
``TypeError``. A byte string this module did not write is a ``ValueError``.

Format, version 2 (the numbers are kept: a new method gets a new number, never an old one;
version 1 had methods 1-4, version 2 added 5):

- byte 0, the method: ``0x01`` raw float64, ``0x02`` float64 XOR, ``0x03`` scaled-integer
  delta, ``0x04`` scaled-integer delta-of-delta, ``0x05`` scaled-integer delta packed at a
  fixed width; ``| 0x80`` when the rest is raw DEFLATE (RFC 1951, ``zlib`` with
  ``wbits=-15``). ``encode`` writes packed delta when a decimal scale fits the chunk and the
  differences fit an int64, else varint delta when a scale fits, else XOR, each plain or
  deflated, whichever is smaller (``bench/RESULTS-codec.md`` has the measurements behind the
  choice: packed decodes in C, three times as fast).
- the body: ``varint n`` (values in the chunk), then the kinds as runs, each one
  ``varint (run_length << 2 | kind)`` until they cover ``n`` (kind 0 None, 1 float, 2 int held
  in the stream, 3 int held apart), then per method:
  - raw: the stream as little-endian float64s;
  - XOR: per value, ``bits XOR previous bits`` (the first against 0) as one control byte
    ``leading_zero_bytes << 4 | trailing_zero_bytes`` and the bytes between them, big-endian
    (``0x80``: the XOR is zero, the value repeats);
  - scaled: one byte ``k`` (0..6), then per stream value ``m = value * 10**k`` (an int64; a
    float comes back as ``m / 10**k``, an int as ``m // 10**k``), written as zigzag varints
    of the differences (delta: ``m[0], m[1]-m[0], ...``; delta-of-delta: ``m[0], m[1]-m[0],
    (m[2]-m[1])-(m[1]-m[0]), ...``), each difference wrapped to int64 as in two's complement;
    packed: the same delta stream, not wrapped, as one byte ``w`` (1, 2, 4 or 8) and each
    difference a little-endian signed int of ``w`` bytes;
  - last, the ints held apart (those the stream cannot carry exactly: beyond int64 once
    scaled, or not a float64 in the float methods), each as a zigzag varint of any length.

"varint" is LEB128 (7 bits a byte, low first); "zigzag" maps 0, -1, 1, -2 ... to 0, 1, 2, 3 ...

May import: the standard library only.
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from itertools import accumulate, repeat
from operator import floordiv, sub, truediv
from typing import List, Optional, Sequence, Tuple, Union

__all__ = ["encode", "decode", "decode_scaled", "encode_with_scale", "encode_timestamps", "decode_timestamps", "method_of",
           "RAW", "XOR", "DELTA", "DOD", "PACKED", "METHODS", "DEFLATED"]

Value = Union[int, float, None]

RAW, XOR, DELTA, DOD, PACKED = 0x01, 0x02, 0x03, 0x04, 0x05
DEFLATED = 0x80
METHODS = {RAW: "raw", XOR: "xor", DELTA: "scaled-delta", DOD: "scaled-dod", PACKED: "scaled-delta-packed"}
# ``encode``'s default, from bench/RESULTS-codec.md: scaled delta wherever a decimal scale fits
# (constants, counters, few-decimal gauges), packed (decoded in C) rather than as varints (a
# little smaller, decoded a value at a time), XOR where no scale fits. Keeping the smallest of
# XOR, delta and delta-of-delta saved at most 1.2% and cost 3x the CPU; raw float64 never won.
# Every method is decoded.
ZLIB_LEVEL = 6
MAX_VALUES = 1 << 20               # a chunk is a minute or a few; this bounds a corrupt one's cost
MAX_BODY_BYTES = 8 * MAX_VALUES + 4096

NONE, FLOAT, INT, APART = 0, 1, 2, 3
MAX_SCALE = 6
_POW = [10 ** k for k in range(MAX_SCALE + 1)]
INT64_MIN, INT64_MAX = -2 ** 63, 2 ** 63 - 1
_TWO64 = 2 ** 64
_ZERO_XOR = 0x80


# --- the public pair ----------------------------------------------------------------------

def encode(values: Sequence[Value], methods: Optional[Sequence[int]] = None, level: int = ZLIB_LEVEL) -> bytes:
    """``values`` as bytes: by default scaled-integer delta when a decimal scale fits every
    float, else XOR; with ``methods``, the smallest of those. Either way each is tried plain
    and deflated (at ``level``), and the smaller kept."""
    if len(values) > MAX_VALUES:
        raise ValueError("a chunk holds at most %d values" % MAX_VALUES)
    if methods is None:
        return encode_with_scale(values, level)[0]
    kinds = _kinds_of(values)
    best: Optional[bytes] = None
    for method in methods:
        body = _body(method, values, kinds)
        if body is None:
            continue  # the method does not apply (a scaled method on full-precision floats)
        for candidate in _framings(method, body, level):
            if best is None or len(candidate) < len(best):
                best = candidate
    if best is None:  # only scaled methods asked for, and they do not apply
        raise ValueError("no method of %r can encode these values" % (list(methods),))
    return best


def encode_with_scale(values: Sequence[Value], level: int = ZLIB_LEVEL) -> Tuple[bytes, Optional[int]]:
    """``encode(values)``, and the decimal scale ``k`` its values were kept at (every float is
    ``m / 10**k`` for an int ``m``), or None when no scale fits (a float method)."""
    if len(values) > MAX_VALUES:
        raise ValueError("a chunk holds at most %d values" % MAX_VALUES)
    if values and set(map(type, values)) == {int} and INT64_MIN <= min(values) and max(values) <= INT64_MAX:
        # Only ints (counters, a group's summaries): the same bytes as below, made in C, not a
        # Python step a value (a group's summaries at 10,000 series: 1.8 million of them).
        out = bytearray()
        _write_varint(out, len(values))
        _write_varint(out, len(values) << 2 | INT)
        out.append(0)  # the scale
        if _write_packed(out, values):
            return min(_framings(PACKED, bytes(out), level), key=len), 0
    kinds = _kinds_of(values)
    for method in (PACKED, DELTA):  # packed when its differences fit it, as varints when not
        made = _scaled_body(method, values, kinds)
        if made is not None:
            return min(_framings(method, made[0], level), key=len), made[1]
    body = _body(XOR, values, kinds)
    return min(_framings(XOR, body, level), key=len), None


def decode(data: bytes) -> List[Value]:
    """The values ``encode`` was given."""
    try:
        return _decode(bytes(data))
    except (IndexError, struct.error, zlib.error, OverflowError) as exc:
        raise ValueError("not an encoded chunk: %s" % exc) from None


def method_of(data: bytes) -> str:
    """Which method a chunk was written with, e.g. ``"scaled-delta+deflate"`` (the bench)."""
    name = METHODS.get(data[0] & ~DEFLATED, "unknown")
    return name + ("+deflate" if data[0] & DEFLATED else "")


def encode_timestamps(ms: Sequence[int]) -> bytes:
    """A chunk's shared timestamps as integer milliseconds: exact ticks cost next to nothing,
    a few milliseconds of jitter about a byte a tick (shared by every series of the chunk)."""
    if any(type(t) is not int for t in ms):
        raise TypeError("timestamps are integer milliseconds")
    return encode(ms, methods=(DELTA, DOD))


def decode_timestamps(data: bytes) -> List[int]:
    out = decode(data)
    if any(type(t) is not int for t in out):
        raise ValueError("not encoded timestamps")
    return out  # type: ignore[return-value]


# --- encoding -----------------------------------------------------------------------------

def _kinds_of(values: Sequence[Value]) -> List[int]:
    kinds = []
    for v in values:
        if v is None:
            kinds.append(NONE)
        elif isinstance(v, float):
            kinds.append(FLOAT)
        elif isinstance(v, int):
            kinds.append(INT)
        else:
            raise TypeError("a chunk holds int, float or None, not %s" % type(v).__name__)
    return kinds


def _framings(method: int, body: bytes, level: int = ZLIB_LEVEL):
    yield bytes((method,)) + body
    if len(body) > 8:  # below that, DEFLATE's own framing costs more than it saves
        packer = zlib.compressobj(level, zlib.DEFLATED, -15)
        yield bytes((method | DEFLATED,)) + packer.compress(body) + packer.flush()


def _body(method: int, values: Sequence[Value], kinds: List[int]) -> Optional[bytes]:
    if method in (RAW, XOR):
        kinds, stream, apart = _float_stream(values, kinds)
        out = _header(kinds)
        if method == RAW:
            out += struct.pack("<%dd" % len(stream), *stream)
        else:
            _write_xor(out, stream)
    elif method in (DELTA, DOD, PACKED):
        made = _scaled_body(method, values, kinds)
        return None if made is None else made[0]
    else:
        raise ValueError("unknown method %r" % (method,))
    for v in apart:
        _write_varint(out, _zigzag(v))
    return bytes(out)


def _scaled_body(method: int, values: Sequence[Value], kinds: List[int]) -> Optional[Tuple[bytes, int]]:
    """A scaled method's body and its scale, or None when it does not apply."""
    scaled = _scaled_stream(values, kinds)
    if scaled is None:
        return None
    k, kinds, stream, apart = scaled
    out = _header(kinds)
    out.append(k)
    if method == PACKED:
        if not _write_packed(out, stream):
            return None
    else:
        _write_differences(out, stream, method == DOD)
    for v in apart:
        _write_varint(out, _zigzag(v))
    return bytes(out), k


def _header(kinds: List[int]) -> bytearray:
    out = bytearray()
    _write_varint(out, len(kinds))
    i, n = 0, len(kinds)
    while i < n:
        kind, j = kinds[i], i + 1
        while j < n and kinds[j] == kind:
            j += 1
        _write_varint(out, (j - i) << 2 | kind)
        i = j
    return out


def _float_stream(values, kinds) -> Tuple[List[int], List[float], List[int]]:
    """The values as float64s; an int that is not exactly a float64 is held apart."""
    stream: List[float] = []
    apart: List[int] = []
    out_kinds = list(kinds)
    for i, v in enumerate(values):
        kind = kinds[i]
        if kind == FLOAT:
            stream.append(v)
        elif kind == INT:
            v = int(v)
            try:
                f = float(v)
            except OverflowError:
                f = None
            if f is not None and int(f) == v:
                stream.append(f)
            else:
                out_kinds[i] = APART
                apart.append(v)
    return out_kinds, stream, apart


def _scale_of(x: float) -> Optional[int]:
    """The least k <= MAX_SCALE with x == m / 10**k for an int64 m, or None."""
    if x == 0.0:
        return 0 if struct.pack("<d", x)[7] == 0 else None  # -0.0 has no integer of its own
    if not (-9.2e18 < x < 9.2e18):  # NaN, ±inf, and anything no int64 m can hold
        return None
    for k, p in enumerate(_POW):
        m = round(x * p)
        if m / p == x:  # int / int rounds once, correctly: the decoder computes the same
            return k if INT64_MIN <= m <= INT64_MAX else None
    return None


def _scaled_stream(values, kinds):
    k = 0
    for i, v in enumerate(values):
        if kinds[i] == FLOAT and not (v and k == 0 and v.is_integer() and -9.2e18 < v < 9.2e18):
            scale = _scale_of(v)
            if scale is None:
                return None
            if scale > k:
                k = scale
    p = _POW[k]
    stream: List[int] = []
    apart: List[int] = []
    out_kinds = list(kinds)
    for i, v in enumerate(values):
        kind = kinds[i]
        if kind == FLOAT:
            m = round(v * p)
            if m / p != v or not INT64_MIN <= m <= INT64_MAX:  # k grew past what v can hold
                return None
            stream.append(m)
        elif kind == INT:
            m = int(v) * p
            if INT64_MIN <= m <= INT64_MAX:
                stream.append(m)
            else:
                out_kinds[i] = APART
                apart.append(int(v))
    return k, out_kinds, stream, apart


def _wrap(d: int) -> int:
    """d as a two's complement int64 (differences of int64s wrap, as in C or Go)."""
    return (d + 2 ** 63) % _TWO64 - 2 ** 63


def _write_differences(out: bytearray, stream: List[int], twice: bool) -> None:
    prev = prev_delta = 0
    for m in stream:
        delta = _wrap(m - prev)
        d = _wrap(delta - prev_delta) if twice else delta
        z = (d << 1) if d >= 0 else ((-d << 1) - 1)
        if z < 0x80:
            out.append(z)
        else:
            _write_varint(out, z)
        prev, prev_delta = m, delta


# array typecodes of 1, 2, 4 and 8 bytes, and the bound of each
_WIDTHS = [(code, array(code).itemsize, 1 << (8 * array(code).itemsize - 1)) for code in "bhiq"]
assert [width for _, width, _ in _WIDTHS] == [1, 2, 4, 8]
_BIG_ENDIAN = sys.byteorder == "big"
_CODES = {width: code for code, width, _ in _WIDTHS}  # a packed stream's width in bytes -> its array code


def _write_packed(out: bytearray, stream: Sequence[int]) -> bool:
    """The differences as little-endian signed ints of the least width that holds them all
    (one byte: 1, 2, 4 or 8), so a reader unpacks them in C; False when one does not fit
    int64 without wrapping, or there is none (the varint method carries those)."""
    if not stream:
        return False
    try:  # (in C, into 8 bytes a difference, not an int object each: a stream may be 512k long)
        deltas = array("q", stream[:1])
        deltas.extend(map(sub, stream[1:], stream))
    except OverflowError:  # a difference past int64: the varint method carries it
        return False
    biggest = max(max(deltas), -min(deltas) - 1)
    for code, width, bound in _WIDTHS:
        if biggest < bound:
            packed = deltas if code == "q" else array(code, deltas)
            if _BIG_ENDIAN:
                packed.byteswap()
            out.append(width)
            out += packed.tobytes()
            return True
    return False


def _write_xor(out: bytearray, stream: List[float]) -> None:
    bits = struct.unpack("<%dQ" % len(stream), struct.pack("<%dd" % len(stream), *stream))
    prev = 0
    for b in bits:
        x = b ^ prev
        prev = b
        if x == 0:
            out.append(_ZERO_XOR)
            continue
        lead = (64 - x.bit_length()) >> 3
        trail = ((x & -x).bit_length() - 1) >> 3
        out.append(lead << 4 | trail)
        out += (x >> (trail << 3)).to_bytes(8 - lead - trail, "big")


def _zigzag(v: int) -> int:
    return (v << 1) if v >= 0 else ((-v << 1) - 1)


def _write_varint(out: bytearray, z: int) -> None:
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)


# --- decoding -----------------------------------------------------------------------------

class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def varint(self) -> int:
        z = shift = 0
        data = self.data
        while True:
            byte = data[self.pos]
            self.pos += 1
            z |= (byte & 0x7F) << shift
            if byte < 0x80:
                return z
            shift += 7

    def signed(self) -> int:
        z = self.varint()
        return (z >> 1) if not z & 1 else -((z + 1) >> 1)

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise IndexError("truncated")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk


def decode_scaled(data: bytes) -> Optional[Tuple[int, List[int], bool]]:
    """``(k, m, floats)`` when a scaled method wrote ``data`` and every value is in its stream
    (no None, no int held apart): value i is ``m[i] / 10**k`` (an int: ``m[i] // 10**k``), and
    ``floats`` says whether any was a float. Else None: ``decode`` it. For a reader that sums
    and compares decimals exactly, as integers, without making a float of each (#23)."""
    try:
        runs, stream, k, r, body = _parse(bytes(data))
    except (IndexError, struct.error, zlib.error, OverflowError) as exc:
        raise ValueError("not an encoded chunk: %s" % exc) from None
    if k is None or r.pos != len(body) or any(kind not in (FLOAT, INT) for kind, _ in runs):
        return None
    return k, stream, any(kind == FLOAT for kind, _ in runs)


def _parse(data: bytes) -> tuple:
    """``(runs, stream, k, reader, body)``: the kinds as written (``(kind, length)`` a run),
    the values the method keeps in its stream (scaled by ``10**k``; ``k`` None for the float
    methods), and the reader, left where the ints held apart begin."""
    if not data:
        raise ValueError("not an encoded chunk: empty")
    method = data[0] & ~DEFLATED
    if method not in METHODS:
        raise ValueError("unknown chunk method 0x%02x (written by a newer version?)" % data[0])
    body = data[1:]
    if data[0] & DEFLATED:
        unpacker = zlib.decompressobj(-15)
        body = unpacker.decompress(body, MAX_BODY_BYTES)
        if unpacker.unconsumed_tail or not unpacker.eof:
            raise ValueError("not an encoded chunk: the DEFLATE stream is cut or too large")
    r = _Reader(body)
    n = r.varint()
    if n > MAX_VALUES:
        raise ValueError("not an encoded chunk: %d values" % n)
    runs: List[Tuple[int, int]] = []  # (kind, length): the kinds as written, a run at a time
    covered = 0
    while covered < n:
        run = r.varint()
        if not 0 < run >> 2 <= n - covered:
            raise ValueError("not an encoded chunk: the kinds overrun the count")
        runs.append((run & 3, run >> 2))
        covered += run >> 2
    in_stream = sum(length for kind, length in runs if kind in (FLOAT, INT))
    if method in (RAW, XOR):
        return runs, _read_raw(r, in_stream) if method == RAW else _read_xor(r, in_stream), None, r, body
    k = r.take(1)[0]
    if k > MAX_SCALE:
        raise ValueError("not an encoded chunk: scale %d" % k)
    stream = _read_packed(r, in_stream) if method == PACKED else _read_differences(r, in_stream, method == DOD)
    return runs, stream, k, r, body


def _decode(data: bytes) -> List[Value]:
    runs, stream, k, r, body = _parse(data)
    n = sum(length for _, length in runs)
    scaled = k is not None
    p = _POW[k] if scaled else 1
    if len(runs) <= 1 and r.pos == len(body):  # one kind: the whole stream at once
        kind = runs[0][0] if runs else NONE
        if kind == NONE:
            return [None] * n
        return _as_kind(kind, stream, scaled, p)
    out: List[Value] = []
    at = 0
    for kind, length in runs:  # a run at a time, each converted in C, not a call a value
        if kind == NONE:
            out.extend([None] * length)
        elif kind == APART:
            out.extend([r.signed() for _ in range(length)])
        else:
            out.extend(_as_kind(kind, stream[at:at + length], scaled, p))
            at += length
    if r.pos != len(body):
        raise ValueError("not an encoded chunk: %d bytes left over" % (len(body) - r.pos))
    return out


def _as_kind(kind: int, stream: list, scaled: bool, p: int) -> list:
    """Stream values as what they were: floats (``m / p`` when scaled), ints (``m // p``)."""
    if kind == FLOAT:
        return list(map(truediv, stream, repeat(p))) if scaled else stream
    if not scaled:
        return [int(v) for v in stream]
    return stream if p == 1 else list(map(floordiv, stream, repeat(p)))


def _read_packed(r: _Reader, count: int) -> List[int]:
    width = r.take(1)[0]
    codes = _CODES
    if width not in codes:
        raise ValueError("not an encoded chunk: packed width %d" % width)
    packed = array(codes[width])
    packed.frombytes(r.take(width * count))
    if _BIG_ENDIAN:
        packed.byteswap()
    return list(accumulate(packed))


def _read_raw(r: _Reader, count: int) -> List[float]:
    return list(struct.unpack("<%dd" % count, r.take(8 * count)))


def _read_xor(r: _Reader, count: int) -> List[float]:
    bits = []
    prev = 0
    for _ in range(count):
        control = r.take(1)[0]
        if control != _ZERO_XOR:
            lead, trail = control >> 4, control & 15
            if lead + trail > 7:
                raise ValueError("not an encoded chunk: XOR control 0x%02x" % control)
            prev ^= int.from_bytes(r.take(8 - lead - trail), "big") << (trail << 3)
        bits.append(prev)
    return list(struct.unpack("<%dd" % count, struct.pack("<%dQ" % count, *bits)))


def _read_differences(r: _Reader, count: int, twice: bool) -> List[int]:
    out = []
    prev = prev_delta = 0
    for _ in range(count):
        d = r.signed()
        delta = _wrap(prev_delta + d) if twice else d
        prev = _wrap(prev + delta)
        prev_delta = delta
        out.append(prev)
    return out
