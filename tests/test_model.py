"""Model-based test: the real server process against a plain model of what it acknowledged.

Hypothesis drives ``python sse_server.py`` (a subprocess with its own data directory) through
random sequences of posts, reads, deletes and restarts, and keeps beside it a model holding only
what the server acknowledged. What is promised (README, "The API", "Storage"):

- ``POST /api/events``: 201 means the event is committed; it is listed exactly once, in id
  order, with the fields it was posted with, by the export (``?since=0&from=0``) and by the
  cursor pages (``?since=ID&limit=N``, following ``next`` while ``more``), before and after any
  restart, graceful or ``kill -9``. A 4xx means nothing was stored: the event never shows up.
- ``POST /api/metrics``: 200 means counters grew by the deltas and gauges hold the values (the
  answer and ``GET /api/metrics`` say so at once); a refusal (400) changes nothing, for the
  whole body. The number policy: a counter delta is a finite number with 0 <= delta <= 1e15; a
  gauge is any number finite as a float64; an integer up to 2**53 stays an integer (also after
  a restart), a larger one, or an int counter total that passes 2**53, becomes the nearest float.
- Bodies nest arrays and objects at most 32 deep (the body object counts); names are at most
  100 characters of ``[a-zA-Z_:][a-zA-Z0-9_:]*``, 1000 names in all; all text valid Unicode.
- ``DELETE /api/metrics/counters/<name>`` and ``.../gauges/<name>``: 200 when it existed, 404
  when not; afterwards the name is gone, and a later post starts again from 0.
- SIGTERM: exit code 0, and after a restart on the same folder counters equal the model, gauges
  their last value, and every acknowledged event is listed.
- ``kill -9``: every acknowledged event is still listed; a counter may lose only what was not
  yet sampled (the last interval), never more, and never gains; a gauge holds a value it was
  set to. Killed a second after the last write, counters and gauges are exactly the model.
- always: no 5xx, no ``Traceback`` in the server's log, ``GET /api/health`` is 200.

Budget: in CI 8 examples of up to 25 steps, at most 2 restarts each, and no shrinking (shrinking a
failure restarts the server hundreds of times: minutes); the failing sequence is printed as found.
``SSE_MODEL_EXAMPLES=N`` runs N examples of 50 steps with up to 5 restarts, and shrinks failures.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from conftest import ROOT, wait_until

# Hypothesis keeps caches (source constants, Unicode tables) in .hypothesis/ under the working
# directory, some of them written while pytest collects; keep them out of the checkout.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "sse-dashboard-hypothesis"))

pytestmark = pytest.mark.skipif(
    os.name != "posix", reason="restarts use SIGTERM and SIGKILL (Windows would need CTRL_BREAK_EVENT "
                               "in a new process group)")

EXAMPLES = int(os.environ.get("SSE_MODEL_EXAMPLES", "0") or 0)
MAX_RESTARTS = 5 if EXAMPLES else 2  # per example: each costs a second or two
INTERVAL_S = 0.2
# README: a hard kill may lose "the counter increments and gauge values of the last sample
# interval" (0.2 s here); a second leaves room for a busy machine.
KILL_GRACE_S = 1.0
MAX_BODY_BYTES = 64 * 1024
MAX_MESSAGE_CHARS, MAX_SOURCE_CHARS = 4096, 100
MAX_NAME_CHARS, MAX_METRICS = 100, 1000
MAX_JSON_DEPTH = 32
MAX_COUNTER_DELTA = 1e15
EXACT_INT_LIMIT = 2 ** 53
LEVELS = ("info", "warning", "error")
NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
# Not blank, as the OpenAPI pattern \S says (ECMAScript whitespace; "\x1f" is a character).
VISIBLE = re.compile("[^\t\n\x0b\x0c\r \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]")


# --------------------------------------------------------------------------
# JSON values that json.dumps cannot write: 400-digit floats, 1e309, "-0"
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """A JSON number written exactly as ``text``; ``value`` is what a JSON parser makes of it."""

    text: str

    @property
    def value(self) -> Any:
        return json.loads(self.text)

    def __repr__(self) -> str:
        return "Raw(%s)" % short_repr(self.text)


class Big(int):
    """An int that prints as the expression that made it (``10 ** 399``, not 400 digits)."""

    def __new__(cls, value: int, expr: str) -> "Big":
        number = super().__new__(cls, value)
        number.expr = expr
        return number

    def __repr__(self) -> str:
        return self.expr


class Long(str):
    """A str that prints as ``'x' * 4096``."""

    def __new__(cls, ch: str, n: int) -> "Long":
        text = super().__new__(cls, ch * n)
        text.expr = "%r * %d" % (ch, n)
        return text

    def __repr__(self) -> str:
        return self.expr


def short_repr(text: str) -> str:
    """repr(text), with a long run of one character written as ``'0' * 398``."""
    match = re.search(r"(.)\1{19,}", text)
    if not match:
        return repr(text)
    parts = [repr(text[:match.start()])] if match.start() else []
    parts.append("%r * %d" % (match.group(1), len(match.group(0))))
    if match.end() < len(text):
        parts.append(repr(text[match.end():]))
    return " + ".join(parts)


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = _Absent()  # a field left out of the body


class Nested(list):
    """``[[[...leaf...]]]``, ``depth`` lists deep, printed as ``Nested(leaf, depth)``."""

    def __init__(self, leaf: Any, depth: int) -> None:
        super().__init__([leaf] if depth == 1 else [Nested(leaf, depth - 1)])
        self.leaf, self.depth = leaf, depth

    def __repr__(self) -> str:
        return "Nested(%r, %d)" % (self.leaf, self.depth)


def to_json(value: Any, ascii_only: bool) -> str:
    """JSON text; NaN and Infinity are written as the (invalid) tokens, Raw as its text.

    ``ascii_only`` writes every non-ASCII character as a \\u escape, which is the only way to
    send a lone surrogate such as \\ud800 in valid UTF-8.
    """
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{%s}" % ",".join("%s:%s" % (json.dumps(k, ensure_ascii=ascii_only), to_json(v, ascii_only))
                                 for k, v in value.items() if v is not ABSENT)
    if isinstance(value, list):
        return "[%s]" % ",".join(to_json(v, ascii_only) for v in value)
    return json.dumps(value, ensure_ascii=ascii_only)


def plain(value: Any) -> Any:
    """What the server's JSON parser sees: Raw numbers replaced by their value."""
    if isinstance(value, Raw):
        return value.value
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if v is not ABSENT}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def has_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, dict):
        return any(has_surrogate(k) or has_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_surrogate(v) for v in value)
    return False


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def finite_float64(value: Any) -> bool:
    if not is_number(value):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an int beyond float64
        return False


def json_depth(value: Any) -> int:
    """How deeply arrays and objects nest (the body object itself is 1)."""
    if isinstance(value, dict):
        return 1 + max((json_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((json_depth(v) for v in value), default=0)
    return 0


def all_finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(all_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(all_finite(v) for v in value)
    return True


def has_big_int(value: Any) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return abs(value) > EXACT_INT_LIMIT
    if isinstance(value, dict):
        return any(has_big_int(v) for v in value.values())
    if isinstance(value, list):
        return any(has_big_int(v) for v in value)
    return False


def at_boundary(number: Any) -> Any:
    """The number policy: an int beyond 2**53 becomes a float."""
    if isinstance(number, int) and abs(number) > EXACT_INT_LIMIT:
        return float(number)
    return number


def same_json(sent: Any, got: Any) -> bool:
    """``got`` is ``sent`` after a JSON round trip (an int beyond 2**53 may come back as a float)."""
    if isinstance(sent, bool) or sent is None:
        return got is sent
    if isinstance(sent, str):
        return isinstance(got, str) and got == sent
    if isinstance(sent, int) and abs(sent) > EXACT_INT_LIMIT:
        return is_number(got) and (got == sent or (finite_float64(sent) and got == float(sent)))
    if is_number(sent):  # an int stays an int, a float a float
        return is_number(got) and isinstance(got, int) == isinstance(sent, int) and got == sent
    if isinstance(sent, list):
        return isinstance(got, list) and len(got) == len(sent) and all(map(same_json, sent, got))
    if isinstance(sent, dict):
        return (isinstance(got, dict) and got.keys() == sent.keys()
                and all(same_json(v, got[k]) for k, v in sent.items()))
    raise TypeError(sent)


def same_total(expected: Any, got: Any) -> bool:
    """Counter totals: ints exactly (and still ints), floats to 12 significant digits."""
    if not is_number(got):
        return False
    if isinstance(expected, int):
        return isinstance(got, int) and got == expected
    return math.isclose(got, expected, rel_tol=1e-12)


def same_value(expected: Any, got: Any) -> bool:
    """Gauges: exactly the value set (and an int stays an int)."""
    return is_number(got) and got == expected and (isinstance(got, int) or not isinstance(expected, int))


# --------------------------------------------------------------------------
# What to send
# --------------------------------------------------------------------------

SURROGATES = st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"])
ODD_TEXT = st.sampled_from([
    "\U0001F600", "\U0001F469\u200d\U0001F469\u200d\U0001F467", "\u200b", "\u202e", "\x00", "\x1b[31m",
    "\r\n", "\u2028", "=cmd|' /C calc'!A0", "<script>alert(1)</script>", "\u01c5", "\ufeff", "\U0010ffff",
    "\ud7ff\ue000", "\"\\", "\x7f", "caf\u00e9", "\u4e2d\u6587",
])
TEXT = st.one_of(st.text(max_size=30), ODD_TEXT, st.lists(ODD_TEXT, min_size=2, max_size=4).map("".join))
NONBLANK = st.builds(lambda before, ch, after: before + ch + after,  # at least one character VISIBLE finds
                     TEXT, st.sampled_from(["a", "\u00e9", "\U0001F600", "0", "\u200b", "\x00"]), TEXT)
BLANK = st.sampled_from(["", " ", "\t\r\n", "\u3000", "\ufeff", "\u2028", "\xa0"])


def with_surrogate(text: st.SearchStrategy) -> st.SearchStrategy:
    """``text`` with one lone surrogate inserted (one only: two could pair into a valid character)."""
    return st.builds(lambda s, sur, at: s[:at % (len(s) + 1)] + sur + s[at % (len(s) + 1):],
                     text, SURROGATES, st.integers(0, 100))


WRONG_TYPES = st.sampled_from([None, 0, 5, True, [], {}, ["info"], {"a": 1}])
BIG_NUMBERS = st.sampled_from([Big(2 ** 53 + 1, "2 ** 53 + 1"), Big(2 ** 63, "2 ** 63"), Big(2 ** 64, "2 ** 64"),
                               Big(-2 ** 63, "-2 ** 63"), 10 ** 15 + 1, Big(10 ** 399, "10 ** 399"), 1e300, -1e300,
                               Raw("-0"), Raw("1E2"), Raw("0." + "0" * 398 + "1")])
JSON_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-EXACT_INT_LIMIT, EXACT_INT_LIMIT),
                        st.floats(allow_nan=False, allow_infinity=False), TEXT, BIG_NUMBERS)
JSON_DATA = st.recursive(JSON_LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)), max_leaves=12)

# An event is drawn valid, then (one time in three) one thing is made wrong: the model says which
# answers are right either way, this only keeps most posts worth storing.
GOOD_EVENT_FIELDS = {
    "message": st.one_of(NONBLANK, NONBLANK, st.builds(Long, st.sampled_from(["x", "\U0001F600"]),
                                                       st.sampled_from([MAX_MESSAGE_CHARS - 1, MAX_MESSAGE_CHARS]))),
    "level": st.one_of(st.sampled_from(LEVELS), st.just(ABSENT)),
    "source": st.one_of(st.just(ABSENT), NONBLANK, st.builds(Long, st.sampled_from(["s", "\u4e2d"]),
                                                              st.just(MAX_SOURCE_CHARS))),
    "data": st.one_of(st.just(ABSENT), st.none(), JSON_DATA, JSON_DATA,
                      st.builds(Nested, JSON_LEAVES, st.sampled_from([1, 30, 31]))),  # the body is one more
}
BAD_EVENT_FIELDS = {
    "message": st.one_of(BLANK, with_surrogate(TEXT), WRONG_TYPES, st.just(ABSENT),
                         st.builds(Long, st.sampled_from(["x", "\u00e9"]), st.just(MAX_MESSAGE_CHARS + 1))),
    "level": st.one_of(st.sampled_from(["INFO", "fatal", "", " info", "debug"]), WRONG_TYPES),
    "source": st.one_of(BLANK, with_surrogate(TEXT), WRONG_TYPES, st.builds(Long, st.just("s"),
                                                                           st.just(MAX_SOURCE_CHARS + 1))),
    "data": st.one_of(
        st.builds(Nested, JSON_LEAVES, st.sampled_from([32, 40])),           # 33 and 41 deep with the body
        st.builds(lambda d, key: {key: d}, JSON_DATA, with_surrogate(TEXT)),  # a lone surrogate in a key
        st.builds(lambda d, s: [d, s], JSON_DATA, with_surrogate(TEXT)),      # ... and in a value
        st.builds(lambda d, bad: [d, bad], JSON_DATA,                         # not JSON numbers
                  st.sampled_from([math.nan, math.inf, -math.inf, Raw("1e309"), Raw("-1e309")])),
    ),
    "unknown": st.sampled_from(["colour", "id", "ts", "Message", "level "]),
}


@dataclass
class EventPost:
    fields: dict
    ascii_only: bool

    @property
    def body(self) -> bytes:
        ascii_only = self.ascii_only or has_surrogate(self.fields)  # a lone surrogate only as an escape
        return to_json(self.fields, ascii_only).encode("utf-8")

    def verdict(self) -> tuple[set, dict | None]:
        """(acceptable statuses, the event as it must be stored) by the README's rules."""
        if len(self.body) > MAX_BODY_BYTES:
            return {413}, None
        body = plain(self.fields)
        message, level = body.get("message", ABSENT), body.get("level", "info")
        source, data = body.get("source", "app"), body.get("data")
        refused = (
            json_depth(body) > MAX_JSON_DEPTH
            or set(body) - {"message", "level", "source", "data"}
            or not all_finite(body) or has_surrogate(body)
            or not isinstance(message, str) or not VISIBLE.search(message) or len(message) > MAX_MESSAGE_CHARS
            or not isinstance(level, str) or level not in LEVELS
            or not isinstance(source, str) or not VISIBLE.search(source) or len(source) > MAX_SOURCE_CHARS
        )
        if refused:
            return {400}, None
        stored = {"level": level, "source": source, "message": message, "data": data}
        # The policy for integers beyond 2**53 inside ``data`` is not written down: stored
        # (perhaps as a float) or refused are both fine, a 5xx is not.
        return ({201, 400} if has_big_int(data) else {201}), stored


@st.composite
def event_posts(draw) -> EventPost:
    fields = {name: draw(values) for name, values in GOOD_EVENT_FIELDS.items()}
    if draw(st.integers(0, 2)) == 0:
        wrong = draw(st.sampled_from(sorted(BAD_EVENT_FIELDS)))
        if wrong == "unknown":
            fields[draw(BAD_EVENT_FIELDS["unknown"])] = 1
        else:
            fields[wrong] = draw(BAD_EVENT_FIELDS[wrong])
    order = draw(st.permutations(sorted(fields)))
    return EventPost({key: fields[key] for key in order}, draw(st.booleans()))


NAME_POOL = ["jobs_done", "a", "_", ":", "ns:sub:x", "A9", "bytes_total", Long("x", MAX_NAME_CHARS)]
NAMES = st.one_of(st.sampled_from(NAME_POOL), st.sampled_from(NAME_POOL),
                  st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,12}", fullmatch=True))
BAD_NAMES = st.sampled_from(["", "9a", "a-b", "a b", "\u00fc", Long("x", MAX_NAME_CHARS + 1), "a\ud800", "a.b"])
GOOD_DELTAS = st.one_of(
    st.sampled_from([0, 1, 1.5, -0.0, 10 ** 15, 1e15, 5e-324, Raw("-0"), Raw("1E2"), Raw("0." + "0" * 398 + "1")]),
    st.integers(0, 1000), st.floats(0, 1e6))
GOOD_GAUGES = st.one_of(
    st.sampled_from([0, -1, 1.5, -0.0, 10 ** 15 + 1, Big(2 ** 53, "2 ** 53"), Big(2 ** 53 + 1, "2 ** 53 + 1"),
                     Big(2 ** 63, "2 ** 63"), Big(2 ** 64, "2 ** 64"), Big(-2 ** 64, "-2 ** 64"), 1e300, -1e300,
                     5e-324, Raw("-0"), Raw("1E2"), Raw("1" + "0" * 300)]),
    st.integers(-10 ** 6, 10 ** 6), st.floats(allow_nan=False, allow_infinity=False))
NOT_NUMBERS = st.sampled_from([math.nan, math.inf, -math.inf, Raw("1e309"), Big(2 ** 1024, "2 ** 1024"),
                               Big(10 ** 399, "10 ** 399"), Raw("1" + "0" * 399), Raw("1" + "0" * 399 + ".5"),
                               True, "1", None, [1], {"v": 1}])
BAD_DELTAS = st.one_of(NOT_NUMBERS, st.sampled_from([-1, -1.5, -5e-324, 10 ** 15 + 1, 1.0000000000000002e15,
                                                     Big(2 ** 53, "2 ** 53"), Big(2 ** 63, "2 ** 63"),
                                                     Big(2 ** 64, "2 ** 64"), 1e300]))
BAD_METRIC_BODIES = {
    "counters": st.one_of(st.dictionaries(NAMES, BAD_DELTAS, min_size=1, max_size=2),
                          st.dictionaries(BAD_NAMES, GOOD_DELTAS, min_size=1, max_size=1),
                          st.sampled_from([None, [], ["a"], 1, "a"])),
    "gauges": st.one_of(st.dictionaries(NAMES, NOT_NUMBERS, min_size=1, max_size=2),
                        st.dictionaries(BAD_NAMES, GOOD_GAUGES, min_size=1, max_size=1),
                        st.sampled_from([None, [], ["a"], 1, "a"])),
    "unknown": st.sampled_from(["histograms", "Counters", "gauge"]),
}


def counter_delta_ok(delta: Any) -> bool:
    return finite_float64(delta) and 0 <= delta <= MAX_COUNTER_DELTA


def name_ok(name: str) -> bool:
    return NAME_RE.fullmatch(name) is not None and len(name) <= MAX_NAME_CHARS


@dataclass
class MetricsPost:
    fields: dict
    ascii_only: bool

    @property
    def body(self) -> bytes:
        return to_json(self.fields, self.ascii_only or has_surrogate(self.fields)).encode("utf-8")

    def accepted_by(self, counters: dict, gauges: dict) -> bool:
        """Whether the README's rules accept this body, given the names that exist now."""
        body = plain(self.fields)
        if json_depth(body) > MAX_JSON_DEPTH or set(body) - {"counters", "gauges"}:
            return False
        new_counters, new_gauges = body.get("counters", {}), body.get("gauges", {})
        if not isinstance(new_counters, dict) or not isinstance(new_gauges, dict):
            return False
        if not all(name_ok(n) and counter_delta_ok(d) for n, d in new_counters.items()):
            return False
        if not all(name_ok(n) and finite_float64(v) for n, v in new_gauges.items()):
            return False
        new_names = (set(new_counters) - counters.keys()) | (set(new_gauges) - gauges.keys())
        return len(counters) + len(gauges) + len(new_names) <= MAX_METRICS


@st.composite
def metrics_posts(draw) -> MetricsPost:
    """Valid counters and gauges; one time in three, one of them made wrong (all or nothing)."""
    fields = {"counters": draw(st.one_of(st.just(ABSENT), st.dictionaries(NAMES, GOOD_DELTAS, max_size=3))),
              "gauges": draw(st.one_of(st.just(ABSENT), st.dictionaries(NAMES, GOOD_GAUGES, max_size=3)))}
    if draw(st.integers(0, 2)) == 0:
        wrong = draw(st.sampled_from(sorted(BAD_METRIC_BODIES)))
        bad = draw(BAD_METRIC_BODIES[wrong])
        if wrong == "unknown":
            fields[bad] = {"a": 1}
        elif isinstance(fields[wrong], dict) and isinstance(bad, dict):
            fields[wrong] = dict(fields[wrong], **bad)  # the good ones beside it must not be applied
        else:
            fields[wrong] = bad
    return MetricsPost(fields, draw(st.booleans()))


# --------------------------------------------------------------------------
# The server process
# --------------------------------------------------------------------------


class ServerProcess:
    """``python sse_server.py`` on a data folder; stdout and stderr go to ``log_path``."""

    def __init__(self, data_dir: str, log_path: str) -> None:
        self.data_dir, self.log_path = data_dir, log_path
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def start(self) -> None:
        env = dict(os.environ)
        env.pop("PYTHONUTF8", None)
        offset = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        with open(self.log_path, "ab") as log_file:
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "sse_server.py"), "--port", "0", "--data-dir", self.data_dir,
                 "--interval", str(INTERVAL_S), "--post-rate", "0"],
                stdout=log_file, stderr=subprocess.STDOUT, cwd=str(ROOT), env=env)

        def started() -> Any:
            if self.proc.poll() is not None:
                raise AssertionError("the server exited with %s at start:\n%s" % (self.proc.returncode, self.log()))
            return re.search(r"dashboard at http://127\.0\.0\.1:(\d+)/", self.log()[offset:])

        self.port = int(wait_until(started, timeout=15, message="the start-up line", interval=0.02).group(1))

    def log(self) -> str:
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            reply = resp.read()
        finally:
            conn.close()
        if resp.status >= 500:
            raise AssertionError("%s %s answered %d %r\nbody sent: %r\nserver log:\n%s"
                                 % (method, path, resp.status, reply[:300], (body or b"")[:300], self.log()[-3000:]))
        return resp.status, reply

    def get_json(self, path: str) -> Any:
        status, reply = self.request("GET", path)
        assert status == 200, (path, status, reply[:300])
        return json.loads(reply)

    def stop_gracefully(self, timeout: float = 10.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def exported_events(server: ServerProcess, page: int) -> list[dict]:
    """Every stored event, through the export form, ``page`` at a time (``since`` = last id seen)."""
    listed: list[dict] = []
    cursor = 0
    while True:
        events = server.get_json("/api/events?since=%d&from=0&limit=%d" % (cursor, page))["events"]
        if not events:
            return listed
        ids = [e["id"] for e in events]
        assert len(events) <= page, "a page of %d for limit=%d" % (len(events), page)
        assert ids == sorted(set(ids)) and ids[0] > cursor, "page after id %d came back as %s" % (cursor, ids)
        listed.extend(events)
        cursor = ids[-1]


def paged_events(server: ServerProcess, page: int) -> list[dict]:
    """Every stored event through the cursor: ``?since=ID&limit=N``, then ``since=next`` while ``more``."""
    listed: list[dict] = []
    cursor = 0
    for _ in range(10000):
        answer = server.get_json("/api/events?since=%d&limit=%d" % (cursor, page))
        ids = [e["id"] for e in answer["events"]]
        assert len(ids) <= page, "a page of %d for limit=%d" % (len(ids), page)
        assert ids == sorted(set(ids)) and all(i > cursor for i in ids), "page after id %d: %s" % (cursor, ids)
        listed.extend(answer["events"])
        if not answer["more"]:
            return listed
        assert ids and answer["next"] >= ids[-1], "more=true but next=%r after ids %s" % (answer["next"], ids)
        cursor = answer["next"]
    raise AssertionError("the cursor never said more=false")


# --------------------------------------------------------------------------
# What a counter may hold after kill -9
# --------------------------------------------------------------------------


@dataclass
class CounterLedger:
    """Every total each counter was acknowledged with since the last restart, with the time.

    After ``kill -9`` at time K a counter holds a total it had at some moment in [K - grace, K]
    (what was sampled is on disk), so it lies between the last total it had before K - grace and
    the largest it had since; a deletion older than K - grace must have stuck.
    """

    entries: dict = field(default_factory=dict)  # name -> [(monotonic time, total or None if deleted)]

    @classmethod
    def durable(cls, totals: dict) -> "CounterLedger":
        return cls({name: [(-math.inf, total)] for name, total in totals.items()})

    def record(self, name: str, total: Any) -> None:
        self.entries.setdefault(name, []).append((time.monotonic(), total))

    def check(self, name: str, got: Any, killed_at: float) -> None:
        settled = killed_at - KILL_GRACE_S
        history = self.entries.get(name, [])
        for i in range(len(history) - 1, -1, -1):
            if history[i][0] <= settled:
                history = history[i:]  # what it held at K - grace, and everything since
                break
        totals = [total for _, total in history if total is not None]
        floor = history[0][1] if history and history[0][0] <= settled and history[0][1] is not None else 0
        if any(total is None for _, total in history):
            floor = 0  # deleted in the window: the deletion may or may not have reached the disk
        if got is None:
            assert floor == 0, "counter %r (total %r a while before the kill) is gone after kill -9" % (name, floor)
            return
        assert totals, "counter %r = %r after kill -9, but it was never acknowledged (or deleted long before)" % (
            name, got)
        ceiling = max(totals)
        assert is_number(got) and 0 <= got, "counter %r = %r after kill -9" % (name, got)
        assert got <= ceiling * (1 + 1e-12), "counter %r = %r after kill -9: more than it ever had (%r)" % (
            name, got, ceiling)
        assert got >= floor * (1 - 1e-12), (
            "counter %r = %r after kill -9: it had %r more than %.1f s before the kill"
            % (name, got, floor, KILL_GRACE_S))


# --------------------------------------------------------------------------
# The state machine
# --------------------------------------------------------------------------


class DashboardModel(RuleBasedStateMachine):
    """The server process, and beside it what it acknowledged."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix="sse-model-")
        self.server = ServerProcess(os.path.join(self.tmp, "data"), os.path.join(self.tmp, "server.log"))
        self.events: list[dict] = []  # acknowledged events, id order: {"id", "level", "source", "message", "data"}
        self.counters: dict[str, Any] = {}
        self.gauges: dict[str, Any] = {}
        self.ledger = CounterLedger()
        self.gauge_values: dict[str, list] = {}  # every value acknowledged since the last restart
        self.writes_since_restart = 0
        self.restarts = 0
        self.last_write_at = -math.inf  # when counters or gauges last changed (monotonic)
        try:
            self.server.start()
        except BaseException:
            self.teardown()
            raise

    def teardown(self) -> None:
        self.server.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # --- writes ---------------------------------------------------------------

    @rule(post=event_posts())
    def post_event(self, post: EventPost) -> None:
        allowed, stored = post.verdict()
        status, reply = self.server.request("POST", "/api/events", post.body)
        event("POST /api/events: %d" % status)
        assert status in allowed, "POST /api/events %r answered %d %r, expected %s" % (
            post.body[:300], status, reply[:300], sorted(allowed))
        if status != 201:
            return
        answer = json.loads(reply)
        assert isinstance(answer["id"], int) and answer["id"] > (self.events[-1]["id"] if self.events else 0), answer
        assert_same_event(stored, answer)
        self.events.append(dict(stored, id=answer["id"]))
        self.writes_since_restart += 1

    @rule(post=metrics_posts())
    def post_metrics(self, post: MetricsPost) -> None:
        accepted = post.accepted_by(self.counters, self.gauges)
        status, reply = self.server.request("POST", "/api/metrics", post.body)
        event("POST /api/metrics: %d" % status)
        assert status == (200 if accepted else 400), "POST /api/metrics %r answered %d %r, expected %d" % (
            post.body[:300], status, reply[:300], 200 if accepted else 400)
        if status != 200:
            return
        self.last_write_at = time.monotonic()
        self.writes_since_restart += 1
        body = plain(post.fields)
        for name, delta in body.get("counters", {}).items():
            self.counters[name] = at_boundary(self.counters.get(name, 0) + at_boundary(delta))
            self.ledger.record(name, self.counters[name])
        for name, value in body.get("gauges", {}).items():
            self.gauges[name] = at_boundary(value)
            self.gauge_values.setdefault(name, []).append(self.gauges[name])
        # The answer holds what is now stored for the names it touched (totals, not deltas).
        answer = json.loads(reply)
        touched = {"counters": {n: self.counters[n] for n in body.get("counters", {})},
                   "gauges": {n: self.gauges[n] for n in body.get("gauges", {})}}
        self.assert_counters_equal(answer.get("counters", {}), " in the POST's answer", touched["counters"])
        self.assert_gauges_equal(answer.get("gauges", {}), " in the POST's answer", touched["gauges"])

    @rule(kind=st.sampled_from(["counters", "gauges"]), pick=st.integers(0, 999), existing=st.booleans())
    def delete_metric(self, kind: str, pick: int, existing: bool) -> None:
        """Delete one the model holds (``existing``, when there is one) or one from the pool."""
        known = self.counters if kind == "counters" else self.gauges
        names = sorted(known) if existing and known else NAME_POOL
        name = names[pick % len(names)]
        status, reply = self.server.request("DELETE", "/api/metrics/%s/%s" % (kind, name))
        event("DELETE: %d" % status)
        expected = 200 if name in known else 404
        assert status == expected, "DELETE /api/metrics/%s/%s answered %d %r; expected %d (it %s)" % (
            kind, name, status, reply[:200], expected, "exists" if name in known else "does not exist")
        if name in known:
            self.last_write_at = time.monotonic()
            self.writes_since_restart += 1
            del known[name]
            if kind == "counters":
                self.ledger.record(name, None)
        snapshot = self.server.get_json("/api/metrics")  # counters and gauges as they are now
        assert name not in snapshot[kind], "%s %r is still in GET /api/metrics after DELETE" % (kind, name)

    # --- reads ----------------------------------------------------------------

    @rule(page=st.integers(1, 40), via=st.sampled_from(["export", "cursor"]))
    def check_events(self, page: int, via: str) -> None:
        self.assert_events_listed(page, via)

    # --- restarts (rare: each costs a second) ------------------------------------

    def may_restart(self) -> bool:
        """Only with something acknowledged since the last restart (else there is nothing to lose)."""
        return self.writes_since_restart > 0 and self.restarts < MAX_RESTARTS

    @precondition(may_restart)
    @rule()
    def restart_gracefully(self) -> None:
        self.writes_since_restart, self.restarts = 0, self.restarts + 1
        event("restart: SIGTERM")
        code = self.server.stop_gracefully()
        assert code == 0, "SIGTERM: exit code %s\n%s" % (code, self.server.log()[-3000:])
        self.server.start()
        snapshot = self.server.get_json("/api/metrics")
        self.assert_counters_equal(snapshot["counters"], " after a graceful restart")
        self.assert_gauges_equal(snapshot["gauges"], " after a graceful restart")
        self.assert_events_listed(25, "export")
        self.assert_events_listed(25, "cursor")
        self.ledger = CounterLedger.durable(self.counters)
        self.gauge_values = {name: [value] for name, value in self.gauges.items()}

    @precondition(may_restart)
    @rule(settled=st.booleans())
    def kill_and_restart(self, settled: bool) -> None:
        """``settled``: first let the window a kill may lose pass (nothing may be lost then)."""
        self.writes_since_restart, self.restarts = 0, self.restarts + 1
        event("restart: kill -9" + (" (settled)" if settled else ""))
        if settled:
            time.sleep(max(0.0, self.last_write_at + KILL_GRACE_S - time.monotonic()))
        killed_at = time.monotonic()
        self.server.kill()
        self.server.start()
        self.assert_events_listed(25, "export")  # committed before 201: a kill loses none
        self.assert_events_listed(25, "cursor")
        snapshot = self.server.get_json("/api/metrics")
        for name in set(snapshot["counters"]) | set(self.ledger.entries):
            self.ledger.check(name, snapshot["counters"].get(name), killed_at)
        for name, value in snapshot["gauges"].items():
            assert any(value == v for v in self.gauge_values.get(name, [])), (
                "gauge %r = %r after kill -9, a value it was never set to (set to %r)"
                % (name, value, self.gauge_values.get(name)))
        if settled:
            when = " after kill -9, %.1f s after the last write" % KILL_GRACE_S
            self.assert_counters_equal(snapshot["counters"], when)
            self.assert_gauges_equal(snapshot["gauges"], when)
        # What survived is the new truth.
        self.counters, self.gauges = dict(snapshot["counters"]), dict(snapshot["gauges"])
        self.ledger = CounterLedger.durable(self.counters)
        self.gauge_values = {name: [value] for name, value in self.gauges.items()}

    # --- always -------------------------------------------------------------------

    @invariant()
    def healthy_and_no_traceback(self) -> None:
        status, reply = self.server.request("GET", "/api/health")
        assert status == 200, (status, reply[:300])
        log = self.server.log()
        if "Traceback" in log:
            raise AssertionError("the server logged a traceback:\n" + log[max(0, log.index("Traceback") - 300):][:4000])

    @invariant()
    def metrics_as_acknowledged(self) -> None:
        """GET /api/metrics shows counters and gauges as they are now, not as last sampled."""
        snapshot = self.server.get_json("/api/metrics")
        self.assert_counters_equal(snapshot["counters"], "")
        self.assert_gauges_equal(snapshot["gauges"], "")

    # --- comparisons -------------------------------------------------------------

    def assert_events_listed(self, page: int, via: str) -> None:
        listed = (exported_events if via == "export" else paged_events)(self.server, page)
        assert [e["id"] for e in listed] == [e["id"] for e in self.events], (
            "%s lists ids %s, acknowledged ids %s" % (via, [e["id"] for e in listed], [e["id"] for e in self.events]))
        for model, got in zip(self.events, listed):
            assert_same_event(model, got)

    def assert_counters_equal(self, got: dict, when: str, expected: dict | None = None) -> None:
        expected = self.counters if expected is None else expected
        assert set(got) == set(expected), "counters%s: names %s, expected %s" % (when, sorted(got), sorted(expected))
        for name, total in expected.items():
            assert same_total(total, got[name]), "counter %r%s = %r, expected %r" % (name, when, got[name], total)

    def assert_gauges_equal(self, got: dict, when: str, expected: dict | None = None) -> None:
        expected = self.gauges if expected is None else expected
        assert set(got) == set(expected), "gauges%s: names %s, expected %s" % (when, sorted(got), sorted(expected))
        for name, value in expected.items():
            assert same_value(value, got[name]), "gauge %r%s = %r, expected %r" % (name, when, got[name], value)


def assert_same_event(model: dict, got: dict) -> None:
    for key in ("level", "source", "message"):
        assert got[key] == model[key], "event %s: %s = %r, posted %r" % (got.get("id"), key, got[key], model[key])
    if model["data"] is None:
        assert got["data"] is None, "event %s: data = %r, posted none" % (got.get("id"), got["data"])
    else:
        assert same_json(model["data"], got["data"]), "event %s: data = %r, posted %r" % (
            got.get("id"), got["data"], model["data"])


DashboardModel.TestCase.settings = settings(
    max_examples=EXAMPLES or 8,
    stateful_step_count=50 if EXAMPLES else 25,
    phases=list(Phase) if EXAMPLES else [Phase.explicit, Phase.reuse, Phase.generate],
    deadline=None,
    database=None,  # no .hypothesis/ folder in the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                           HealthCheck.large_base_example],
)
TestDashboardModel = DashboardModel.TestCase
