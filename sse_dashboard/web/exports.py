"""Exports: events and history as streamed CSV or JSON, a chunk at a time.

One concept: turning rows (from memory or a database cursor) into bytes for a
download, without holding the whole export in memory.

Invariants:
- every function returns an iterator of bytes that yields its first chunk only
  after the first row: the server pulls that chunk before it sends the status
  line, so a query that fails at once becomes an error status, not a 200;
- CSV cells that a spreadsheet would run as a formula (``= + - @``, tab, CR)
  are quoted with ``'`` (OWASP "CSV injection"): event text comes from clients.
"""

from __future__ import annotations

import csv
import io
import time
from typing import Any, Callable, Iterable, Iterator

__all__ = ["csv_chunks", "history_csv", "events_csv", "json_array_chunks", "iso_utc",
           "EVENTS_CSV_NAME", "HISTORY_CSV_NAME"]

EVENTS_CSV_NAME = "sse-dashboard-events.csv"
HISTORY_CSV_NAME = "sse-dashboard-history.csv"
EVENT_COLUMNS = ["id", "ts", "time_utc", "level", "source", "message", "data"]


def csv_chunks(header: list, rows: Iterable) -> Iterator[bytes]:
    """CSV lines in chunks of about 16 KiB (the header and the first row come first)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for i, row in enumerate(rows):
        writer.writerow([_cell(value) for value in row])
        if out.tell() > 16384 or i == 0:
            yield out.getvalue().encode("utf-8")
            out.seek(0)
            out.truncate()
    yield out.getvalue().encode("utf-8")


def history_csv(rows: Callable[[], Iterable[tuple[float, dict]]]) -> Iterator[bytes]:
    """Wide CSV (one column per series): a first pass finds the series, a second writes the rows."""
    names = sorted({name for _, flat in rows() for name in flat})
    return csv_chunks(["ts", "time_utc"] + names,
                      ([ts, iso_utc(ts)] + [flat.get(n) for n in names] for ts, flat in rows()))


def events_csv(events: Iterable) -> Iterator[bytes]:
    return csv_chunks(EVENT_COLUMNS, ([e.id, e.ts, iso_utc(e.ts), e.level, e.source, e.message, e.data_json or ""]
                                      for e in events))


def json_array_chunks(opening: str, items: Iterable[bytes], closing: str) -> Iterator[bytes]:
    """``opening`` + the items joined by commas + ``closing``, in chunks of 64 items."""
    parts = [opening.encode("utf-8")]
    for i, item in enumerate(items):
        parts.append(b"," + item if i else item)
        if i == 0 or len(parts) >= 64:
            yield b"".join(parts)
            parts = []
    parts.append(closing.encode("utf-8"))
    yield b"".join(parts)


def iso_utc(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + ".%03dZ" % int(round((ts % 1) * 1000) % 1000)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
