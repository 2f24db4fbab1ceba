"""What a share link's viewer sees (#26): the answers of the routes a link may read, cut to its sections.

One concept: the share filter, pure functions over the JSON the routes answer anyone else. The
handler runs a share session's answer through ``view_answer`` (the stream hub does the same to
each frame, through ``ShareView``), so the server never sends what a link hides; the page only
lays out what it gets.

Invariants:
- allow-lists, not deny-lists: a snapshot keeps only the keys its sections name, so a part added
  to the snapshot later stays out of shares until it is given a section;
- hidden in anything shared, whatever the sections: IP addresses (v4 and v6, in any text), event
  ``data``, job run ``output``, the jobs' UUIDs and the ping key (each is a ping secret), process
  arguments (a process is its pid, name, CPU and memory), and with ``hide_hosts`` this machine's
  name;
- every route a link may read has a filter here (``FILTERS``), and ``routes.SHARE_READS`` names the
  same handlers (a test keeps them equal): a route without one is refused to a share session.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
from typing import Any, Callable

from sse_dashboard.sampler import encode_json
from sse_dashboard.web.shares import Share

__all__ = ["ShareView", "view_answer", "redact_text", "FILTERS", "HIDDEN"]

HIDDEN = "[hidden]"
_METRICS_HEAD = b"event: metrics\ndata: "  # streams.metrics_frame's
BASE_KEYS = ("boot_id", "events_epoch", "seq", "ts", "interval")
SNAPSHOT_KEYS = {"system": ("system", "server"), "metrics": ("counters", "gauges"), "jobs": ("jobs",),
                 "heartbeats": ("heartbeats",), "alerts": ("alerts",)}
HISTORY_PREFIXES = {"system": ("system.", "server."), "metrics": ("counters.", "gauges.")}
DROPPED_KEYS = frozenset(("data", "output", "ping_key", "rid", "cmdline", "args", "exe", "cwd", "environ"))
NAME_MAPS = frozenset(("counters", "gauges", "series", "min", "max"))  # keys are names, not fields
HOST_KEYS = frozenset(("host", "hostname", "instance", "node"))
PROCESS_KEYS = ("pid", "name", "cpu_percent", "rss_bytes")
_IPV4 = re.compile(r"(?<![0-9.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9])")
_IPV6 = re.compile(r"(?<![0-9A-Za-z:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:%[0-9A-Za-z]+)?(?![0-9A-Za-z:])")


def _host_pattern() -> re.Pattern | None:
    names = {name for name in (socket.gethostname(), socket.gethostname().split(".")[0]) if len(name) >= 2}
    if not names:
        return None
    return re.compile(r"(?<![\w-])(?:%s)(?![\w-])" % "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)),
                      re.IGNORECASE)


_HOSTS = _host_pattern()


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.split("%")[0])
        return True
    except ValueError:
        return False


def redact_text(text: str, hide_hosts: bool = False) -> str:
    """``text`` with IP addresses (and with ``hide_hosts`` this machine's name) replaced by ``[hidden]``."""
    text = _IPV4.sub(lambda m: HIDDEN if _is_ip(m.group(0)) else m.group(0), text)
    if ":" in text:
        text = _IPV6.sub(lambda m: HIDDEN if m.group(0).count(":") >= 2 and _is_ip(m.group(0)) else m.group(0), text)
    if hide_hosts and _HOSTS is not None:
        text = _HOSTS.sub(HIDDEN, text)
    return text


def _scrub(value: Any, share: Share, names: bool = False) -> Any:
    """``value`` with the fields hidden in any share dropped and every text redacted. ``names``: a
    map of metric or series names (anyone's choice: a counter may be called ``data``), whose keys
    are never taken for fields, but have their addresses hidden (a label value may hold one)."""
    if isinstance(value, dict) and names:
        return {redact_text(key, share.hide_hosts): _scrub(item, share) for key, item in value.items()}
    if isinstance(value, dict):
        return {key: _scrub(item, share, key in NAME_MAPS) for key, item in value.items()
                if key not in DROPPED_KEYS and not (share.hide_hosts and key in HOST_KEYS)}
    if isinstance(value, list):
        return [_scrub(item, share) for item in value]
    if isinstance(value, str):
        return redact_text(value, share.hide_hosts)
    return value


def _without_ids(jobs: Any) -> Any:
    """Jobs without their UUIDs: whoever has one may ping the job."""
    return [{k: v for k, v in job.items() if k != "id"} for job in jobs] if isinstance(jobs, list) else jobs


def snapshot_for(share: Share, snapshot: dict) -> dict:
    kept = {key: snapshot[key] for key in BASE_KEYS if key in snapshot}
    for section in share.sections:
        for key in SNAPSHOT_KEYS.get(section, ()):
            if key in snapshot:
                kept[key] = snapshot[key]
    if "jobs" in kept:
        kept["jobs"] = _without_ids(kept["jobs"])
    return kept


def history_for(share: Share, answer: dict) -> dict:
    prefixes = tuple(p for section in share.sections for p in HISTORY_PREFIXES.get(section, ()))
    series = answer.get("series") or {}
    return dict(answer, series={name: values for name, values in series.items() if name.startswith(prefixes)})


def jobs_for(share: Share, answer: dict) -> dict:
    return {"jobs": _without_ids(answer.get("jobs", []))}


def job_for(share: Share, answer: dict) -> dict:
    if "runs" in answer:
        return answer  # each run's output is dropped by _scrub
    return {k: v for k, v in answer.items() if k != "id"}


def alerts_for(share: Share, answer: dict) -> dict:
    kept = {}
    if "alerts" in share.sections:
        kept.update(alerts=answer.get("alerts", []), rules=answer.get("rules", []))
    if "heartbeats" in share.sections:
        kept["heartbeats"] = answer.get("heartbeats", [])
    return kept


def processes_for(share: Share, answer: dict) -> dict:
    rows = {key: [{k: row.get(k) for k in PROCESS_KEYS} for row in answer.get(key, [])] for key in ("cpu", "memory")}
    return dict({k: v for k, v in answer.items() if k not in ("cpu", "memory")}, **rows)


def events_for(share: Share, answer: dict) -> dict:
    """A page of events; empty for a link without the events section (its stream passes over them too)."""
    return answer if "events" in share.sections else dict(answer, events=[], more=False)


def _as_is(share: Share, answer: dict) -> dict:
    return answer


# handler name -> what its answer becomes for a share session (then scrubbed)
FILTERS: dict[str, Callable[[Share, dict], dict]] = {
    "get_metrics": snapshot_for, "get_history": history_for, "get_events": events_for, "get_jobs": jobs_for,
    "get_job": job_for, "get_alerts": alerts_for, "get_processes": processes_for, "get_share_session": _as_is,
    "stream_metrics": snapshot_for,
}


def view_answer(handler: str, share: Share, answer: Any) -> Any:
    """A route's JSON answer as a share session may see it."""
    return _scrub(FILTERS[handler](share, answer), share)


class ShareView:
    """A link's view of the stream, for the hub: each snapshot frame cut once per sample (shared by
    every stream of that link), events shown only with the ``events`` section, scrubbed."""

    def __init__(self, share: Share) -> None:
        self.share = share
        self.digest = share.digest
        self._cached: tuple[int, bytes] | None = None

    def snapshot_body(self, seq: int, body: bytes) -> bytes:
        cached = self._cached
        if cached is not None and cached[0] == seq:
            return cached[1]
        cut = encode_json(view_answer("get_metrics", self.share, json.loads(body)))
        self._cached = (seq, cut)
        return cut

    def snapshot_frame(self, seq: int, frame: bytes) -> bytes:
        """A shared ``event: metrics`` frame of sample ``seq``, cut for this link."""
        body = frame[len(_METRICS_HEAD):-2] if frame.startswith(_METRICS_HEAD) else frame
        return _METRICS_HEAD + self.snapshot_body(seq, body) + b"\n\n"

    def event_json(self, event: Any) -> str | None:
        """The event as this link shows it, or None when the link does not show events."""
        if "events" not in self.share.sections:
            return None
        return json.dumps(_scrub(event.to_dict(), self.share), separators=(",", ":"), ensure_ascii=False)

    def __hash__(self) -> int:
        return hash(self.digest)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ShareView) and other.digest == self.digest
