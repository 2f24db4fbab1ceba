"""A status page's view (``alerting.status``) as HTML and as an Atom feed (#26).

One concept: the bytes a viewer without a token gets. ``render_html`` is the server-rendered
first view, complete without JavaScript (``static/status.js`` then keeps it live over the
stream); ``render_atom`` is the page's incidents as an Atom 1.0 feed (RFC 4287: the feed's and
each entry's id, title and updated; an author; a link).

Invariants:
- every value from a view goes through ``html.escape`` (HTML) or ``xml.sax.saxutils`` (Atom):
  labels and notes are an admin's text, and nothing but text;
- no inline script or style (the CSP is ``default-src 'self'``): bars and charts are classes;
- pure functions of a view: the caller caches their bytes per view (once per sample).
"""

from __future__ import annotations

import datetime
import html
import time
from xml.sax.saxutils import escape as xml_escape, quoteattr

__all__ = ["render_html", "render_atom", "STATE_TEXT", "bar_class", "percent", "when", "iso"]

STATE_TEXT = {"up": "Operational", "down": "Down", "late": "Late", "maintenance": "Maintenance",
              "unknown": "No data"}
OVERALL_TEXT = {"up": "All systems operational", "down": "Some systems are down", "late": "Some systems are late",
                "unknown": "No data yet"}
WINDOW_NAMES = (("24h", "24 hours"), ("7d", "7 days"), ("30d", "30 days"), ("90d", "90 days"))


def percent(fraction: float | None) -> str:
    """0.99953 -> "99.95%"; None -> "no data"."""
    if fraction is None:
        return "no data"
    return "%.2f%%" % (100 * fraction) if fraction < 1 else "100%"


def bar_class(fraction: float | None) -> str:
    if fraction is None:
        return "none"
    return "up" if fraction >= 1 else "partial" if fraction >= 0.95 else "down"


def when(ts: float | None) -> str:
    """A wall-clock ts as people read it, in UTC (the page's viewers are anywhere)."""
    return "" if ts is None else time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _state(state: str) -> str:
    state = state if state in STATE_TEXT else "unknown"  # a class from an allowlist, never raw text
    return '<span class="state state-%s">%s</span>' % (state, _e(STATE_TEXT[state]))


def _bars(view: dict, bars: list) -> str:
    first = datetime.date.fromisoformat(view["first_day"])
    cells = []
    for i, fraction in enumerate(bars):
        day = (first + datetime.timedelta(days=i)).isoformat()
        cells.append('<li class="bar bar-%s" title="%s: %s"></li>' % (bar_class(fraction), day, _e(percent(fraction))))
    return ('<ol class="bars" aria-label="%s">%s</ol>'
            % (_e("daily uptime, %s to today" % view["first_day"]), "".join(cells)))


def _durations(points: list) -> str:
    if not points:
        return ""
    longest = max(p["duration"] for p in points) or 1.0
    cells = "".join('<li class="run run-%s h%d" title="%s: %.1f s"></li>'
                    % ("ok" if p["ok"] else "fail", max(1, round(10 * p["duration"] / longest)), _e(when(p["ts"])),
                       p["duration"]) for p in points)
    return '<ol class="durations" aria-label="run durations, newest last">%s</ol>' % cells


def _component(c: dict, view: dict) -> str:
    value = ""
    if c["kind"] == "metric":
        value = '<span class="value">%s</span>' % _e("" if c.get("value") is None else "%g" % c["value"])
    uptime = "".join("<div><dt>%s</dt><dd>%s</dd></div>" % (_e(label), _e(percent(c["uptime"].get(key))))
                     for key, label in WINDOW_NAMES)
    return ('<li class="component"><div class="row"><span class="label">%s</span>%s%s</div>'
            '<dl class="uptime">%s</dl>%s%s</li>'
            % (_e(c["label"]), value, _state(c["state"]), uptime, _bars(view, c["bars"]), _durations(c.get("durations"))))


def _incident(incident: dict) -> str:
    status = ("resolved %s" % when(incident["resolved"])) if incident["resolved"] is not None else "ongoing"
    steps = "".join('<li class="update update-%s"><time datetime="%s">%s</time> %s</li>'
                    % (_e(u["kind"]), iso(u["ts"]), _e(when(u["ts"])), _e(u["text"])) for u in incident["updates"])
    return ('<article class="incident" id="incident-%d"><h3>%s</h3><p class="incident-status">%s</p>'
            '<ol class="timeline">%s</ol></article>' % (incident["id"], _e(incident["title"]), _e(status), steps))


def _notice(notice: dict) -> str:
    return ('<li class="notice"><strong>%s to %s</strong> %s</li>'
            % (_e(when(notice["start"])), _e(when(notice["end"])), _e(notice["text"])))


def render_html(view: dict) -> bytes:
    """The whole page, readable as it is; ``static/status.js`` replaces its parts live."""
    slug, title = view["slug"], view["title"]
    overall = view["state"] if view["state"] in OVERALL_TEXT else "unknown"
    notices = "".join(_notice(n) for n in view["maintenance"])
    incidents = "".join(_incident(i) for i in view["incidents"]) or '<p class="none">No incidents.</p>'
    return ("<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            "<title>%(title)s</title>"
            '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml"><link rel="stylesheet" href="/static/status.css">'
            '<link rel="alternate" type="application/atom+xml" title="%(title)s: incidents" href="/status/%(slug)s/feed.atom">'
            '<script src="/static/status.js" defer></script></head>'
            '<body data-slug="%(slug)s"><header><h1>%(title)s</h1>'
            '<p id="overall" class="overall overall-%(overall)s" role="status" aria-live="polite">%(overall_text)s</p>'
            '<p class="meta">Updated <time id="updated" datetime="%(iso)s">%(updated)s</time>'
            ' <span id="live" class="live">(not live: reload to update)</span></p></header>'
            '<main><section id="maintenance" aria-label="Scheduled maintenance"%(hidden)s><h2>Scheduled maintenance</h2>'
            '<ul id="notices">%(notices)s</ul></section>'
            '<section aria-labelledby="components-title"><h2 id="components-title">Components</h2>'
            '<ul id="components">%(components)s</ul></section>'
            '<section aria-labelledby="incidents-title"><h2 id="incidents-title">Incidents</h2>'
            '<div id="incidents">%(incidents)s</div></section></main>'
            '<footer><a href="/status/%(slug)s/feed.atom">Incidents as an Atom feed</a></footer>'
            "</body></html>\n"
            % {"title": _e(title), "slug": _e(slug), "overall": overall, "overall_text": _e(OVERALL_TEXT[overall]),
               "iso": iso(view["updated"]), "updated": _e(when(view["updated"])),
               "hidden": "" if notices else " hidden", "notices": notices,
               "components": "".join(_component(c, view) for c in view["components"]),
               "incidents": incidents}).encode("utf-8")


def render_atom(view: dict, base_url: str) -> bytes:
    """The incidents, newest first, as Atom 1.0; ``base_url`` is the page's origin."""
    page = "%s/status/%s" % (base_url, view["slug"])
    entries = []
    for incident in view["incidents"]:
        last = max(u["ts"] for u in incident["updates"])
        link = "%s#incident-%d" % (page, incident["id"])
        summary = "\n".join("%s %s" % (when(u["ts"]), u["text"]) for u in incident["updates"])
        title = incident["title"] + (" (resolved)" if incident["resolved"] is not None else "")
        entries.append("<entry><id>%s</id><title>%s</title><updated>%s</updated><published>%s</published>"
                       "<link rel=\"alternate\" href=%s/><summary type=\"text\">%s</summary></entry>"
                       % (xml_escape(link), xml_escape(title), iso(last), iso(incident["started"]), quoteattr(link),
                          xml_escape(summary)))
    updated = max([view["updated"]] if not view["incidents"] else
                  [max(u["ts"] for u in i["updates"]) for i in view["incidents"]])
    return ('<?xml version="1.0" encoding="utf-8"?>\n'
            '<feed xmlns="http://www.w3.org/2005/Atom"><id>%s</id><title>%s</title><updated>%s</updated>'
            '<author><name>%s</name></author><link rel="self" href=%s/><link rel="alternate" href=%s/>%s</feed>\n'
            % (xml_escape(page), xml_escape(view["title"] + ": incidents"), iso(updated), xml_escape(view["title"]),
               quoteattr(page + "/feed.atom"), quoteattr(page), "".join(entries))).encode("utf-8")
