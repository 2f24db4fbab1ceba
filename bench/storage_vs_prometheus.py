"""The #23 table: the dashboard's stored history beside Prometheus 2.42 on every row, in one run
(bytes a sample on disk, write CPU, query latency, RSS), and against the main before #23.

Run: python bench/storage_vs_prometheus.py            (writes bench/RESULTS-storage.md; about 20 min:
     the write runs last 60 s each here, --write-seconds 120 for longer)
     python bench/storage_vs_prometheus.py --quick    (reduced sizes: a few minutes, to try it)

It runs the pieces, importing them, and keeps each one's details below the table:
- ``history_size.py``: bytes a sample, the whole database file against a Prometheus block built
  by promtool from the same samples (four synthetic shapes and this machine's system series);
- ``history_load.py``: CPU a value of the sampler and the storage writer at 1,000 and 10,000
  series a second, whether the writer keeps up, RSS; Prometheus scraping as many gauges;
- ``history_query.py``: latency of ``GET /api/metrics/history`` against ``query_range`` on the
  same samples (1,000 series over an hour, 10 series over 7 days, 600 points).
Needs ``prometheus`` and ``promtool`` (Debian's packages) and psutil.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTES_MARK = "<!-- written by hand below this line; bench/storage_vs_prometheus.py keeps it -->"
sys.path.insert(0, str(ROOT / "bench"))
import history_load  # noqa: E402
import history_query  # noqa: E402
import history_size  # noqa: E402
from reference import revision  # noqa: E402

log = logging.getLogger("storage_vs_prometheus")

FULL = dict(size_series=200, size_samples=3600, system_every=0.05, write_series="1000,10000", write_seconds=60,
            server_seconds=60, query_series=1000, query_seconds=3600, long_series=10, long_seconds=7 * 86400,
            points=600, repeat=10)
QUICK = dict(size_series=50, size_samples=600, system_every=0.02, write_series="200,2000", write_seconds=20,
             server_seconds=10, query_series=100, query_seconds=600, long_series=10, long_seconds=86400,
             points=600, repeat=3)


def run(options: argparse.Namespace) -> dict:
    """Every piece, one after the other (each measures alone on the machine)."""
    out: dict = {"options": vars(options), "commit": revision(), "started": time.strftime("%Y-%m-%d %H:%M")}
    began = time.monotonic()
    out["load_average"] = {"bytes": load_average()}
    log.info("bytes a sample: recording this machine's system series (%d readings)", options.size_samples)
    system = history_size.system_shape(options.size_samples, options.system_every)
    out["system_series"] = len(system)
    log.info("bytes a sample: ours, then Prometheus blocks")
    out["size"] = {"ours": history_size.ours(ROOT, options.size_series, options.size_samples, system),
                   "prometheus": history_size.prometheus(options.size_series, options.size_samples, system)}
    log.info("write cost (about %d s)", 5 * options.write_seconds + 2 * options.server_seconds + 120)
    out["load_average"]["write"] = load_average()
    series = tuple(int(n) for n in options.write_series.split(","))
    out["load"] = history_load.measure(options.reference, series, options.write_seconds, options.server_seconds)
    out["load_average"]["query"] = load_average()
    log.info("query latency")
    out["query"] = history_query.measure(options.query_series, options.query_seconds, options.long_series,
                                         options.long_seconds, options.points, options.repeat)
    out["load_average"]["end"] = load_average()
    out["minutes"] = (time.monotonic() - began) / 60
    return out


def load_average() -> float | None:
    """The machine's 1-minute load average (it is shared: others' work shows in the timings)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # (Windows)
        return None


# --- the table ----------------------------------------------------------------------------

def ratio(ours: float, theirs: float | None) -> str:
    return "%.2f" % (ours / theirs) if theirs else "-"


def met(ok: bool | None, detail: str = "") -> str:
    if ok is None:
        return "-"
    return ("yes" if ok else "**no**") + (" (%s)" % detail if detail else "")


def size_rows(out: dict) -> list[str]:
    ours, prom = out["size"]["ours"], out["size"]["prometheus"]
    o = out["options"]
    rows = []
    for shape, value in ours.items():
        theirs = prom.get(shape.replace(history_size.EMPTY, ""))
        what = ("%s (%d series)" % (shape, out["system_series"]) if shape.startswith(history_size.SYSTEM)
                else "%s (%d series)" % (shape, o["size_series"]))
        rows.append("| bytes a sample on disk: %s, %d samples at 1 s | %.2f B | %s | %s | - | at or below Prometheus "
                    "| %s |" % (what, o["size_samples"], value, "%.2f B" % theirs if theirs else "-",
                                ratio(value, theirs), met(value <= theirs if theirs else None)))
    return rows


def write_rows(out: dict) -> list[str]:
    load = out["load"]
    rows = []
    for n, sides in load["path"].items():
        now, before = sides["now"], sides["reference"]
        prom = load["prometheus"].get(n)
        ours_us, before_us = history_load.write_us(now), history_load.write_us(before)
        rows.append("| write CPU a value, %s series at 1 s (sampler + storage writer; Prometheus: its whole process "
                    "scraping them) | %.2f µs (%.1f %% of a core); + %.2f µs updating the registry | %s | %s "
                    "| %.2f µs; + %.2f µs | no worse than before #23 | %s |" % (
                        format(int(n), ","), ours_us, now["sampler_percent"] + now["writer_percent"],
                        now["update_us_a_value"],
                        "%.2f µs (%.1f %% of a core)" % (prom["us_a_sample"], prom["cpu_percent"]) if prom else "-",
                        ratio(ours_us, prom["us_a_sample"] if prom else None), before_us, before["update_us_a_value"],
                        met(ours_us <= before_us, "%.2f of before" % (ours_us / before_us))))
    largest = max(load["path"], key=int)
    now, before = load["path"][largest]["now"], load["path"][largest]["reference"]
    prom = load["prometheus"].get(largest)
    rows.append("| %s series at 1 s sustained for %d s (every tick on time, nothing dropped, the writer's queue "
                "empty) | %s: %d ticks, %d late (longest gap %.1f s), queue max %s, %d dropped | %s | - | %s | "
                "sustained | %s |" % (
                    format(int(largest), ","), load["seconds"], history_load.sustained(now), now["ticks"],
                    now["late_ticks"], now["longest_gap_s"],
                    now["queue_max"] if now["queue_max"] is not None else "n/a", now["dropped"],
                    "%d scrapes in %.0f s" % (prom["scrapes"], prom["seconds"]) if prom else "-",
                    history_load.sustained(before), met(history_load.sustained(now) == "yes")))
    return rows


def query_rows(out: dict) -> list[str]:
    rows = []
    for s in out["query"]:
        by_side = {r["side"]: r for r in s["results"]}
        ours, prom = by_side["dashboard"], by_side["Prometheus query_range"]
        r = ours["p50_s"] / prom["p50_s"]
        rows.append("| query latency p50 (p90), %s at %d points | %s (%s) | %s (%s) | %.1f | - | within 2x of "
                    "Prometheus | %s |" % (
                        history_query.describe(s), s["points"], history_query.ms(ours["p50_s"]),
                        history_query.ms(ours["p90_s"]), history_query.ms(prom["p50_s"]),
                        history_query.ms(prom["p90_s"]), r, met(r <= 2.0)))
        same = by_side.get("Prometheus min, avg and max")
        if same:  # the same answer as ours: a reference, the target stays query_range's
            rows.append("| query latency p50 (p90), %s at %d points, Prometheus answering min, avg and max a step "
                        "as ours does | %s (%s) | %s (%s) | %.1f | - | - | - |" % (
                            history_query.describe(s), s["points"], history_query.ms(ours["p50_s"]),
                            history_query.ms(ours["p90_s"]), history_query.ms(same["p50_s"]),
                            history_query.ms(same["p90_s"]), ours["p50_s"] / same["p50_s"]))
    return rows


def rss_rows(out: dict) -> list[str]:
    load = out["load"]
    largest = max(load["path"], key=int)
    now, before = load["path"][largest]["now"], load["path"][largest]["reference"]
    prom = load["prometheus"].get(largest)
    rows = ["| RSS while writing %s series at 1 s (peak: the writing path in one process; Prometheus scraping "
            "them) | %.0f MB | %s | %s | %.0f MB | - | - |" % (
                format(int(largest), ","), now["rss_peak_mb"], "%.0f MB" % prom["rss_peak_mb"] if prom else "-",
                ratio(now["rss_peak_mb"], prom["rss_peak_mb"] if prom else None), before["rss_peak_mb"])]
    if load["server"]:
        server, server_before = load["server"]["now"], load["server"]["reference"]
        prom = load["prometheus"].get(str(history_load.SERVER_GAUGES))
        rows.append("| RSS of a real server fed %s gauges a second by POST (peak) | %.0f MB | %s | %s | %.0f MB | - "
                    "| - |" % (
                        format(history_load.SERVER_GAUGES, ","), server["rss_peak_mb"],
                        "%.0f MB" % prom["rss_peak_mb"] if prom else "-",
                        ratio(server["rss_peak_mb"], prom["rss_peak_mb"] if prom else None),
                        server_before["rss_peak_mb"]))
    return rows


def size_details(out: dict) -> list[str]:
    o = out["options"]
    return ["`history_size.ours` and `history_size.prometheus`: %d series a shape (the system series: the %d this "
            "machine reports, %d readings %g s apart, stored as if a second apart), %d samples at 1 s, written "
            "through the storage writer in batches of 10; the whole SQLite file after a WAL checkpoint, less "
            "its free pages (not the -shm file, shared memory gone with the last connection), and its growth "
            "over an empty store's file (its schema and empty tables: a fixed cost), against the block's "
            "chunks and index (`promtool tsdb create-blocks-from "
            "openmetrics`, 2 h blocks). Prometheus' head (the newest two hours, in memory and its WAL) is not "
            "counted; our newest staged rows and roll-ups are." % (
                o["size_series"], out["system_series"], o["size_samples"], o["system_every"], o["size_samples"])]


def extra_series(out: dict) -> str:
    """What "all series" holds on our side beyond the gauges (the server samples itself meanwhile)."""
    s = out["query"][0]
    by_side = {r["side"]: r for r in s["results"]}
    extra = by_side["dashboard"]["series"] - by_side["Prometheus query_range"]["series"]
    if extra <= 0:
        return ""
    return ("Our server samples this machine every second meanwhile, as a dashboard does, so \"all series\" "
            "answered %d more than Prometheus holds: its system and server series." % extra)


def loads(out: dict) -> str:
    known = {part: value for part, value in out.get("load_average", {}).items() if value is not None}
    if not known:
        return ""
    return " The 1-minute load average at the start of each part (the machine is shared): %s." % ", ".join(
        "%s %.1f" % (part, value) for part, value in known.items())


def report(out: dict) -> str:
    o = out["options"]
    lines = ["# Stored history beside Prometheus (#23)", "",
             "`python bench/storage_vs_prometheus.py%s` on %s: commit %s, %s, Python %s, %s cores; Prometheus "
             "and promtool %s; before #23: %s. The whole run took %.0f min." % (
                 " --quick" if o.get("quick") else "", out["started"], out["commit"], sys.platform,
                 sys.version.split()[0], history_load.psutil.cpu_count(), history_load.prometheus_version(),
                 o["reference"], out["minutes"]) + loads(out), "",
             "| measure | dashboard (this checkout) | Prometheus 2.42 | dashboard / Prometheus | dashboard before #23 "
             "(%s) | target (#23) | met |" % o["reference"],
             "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += size_rows(out) + write_rows(out) + query_rows(out) + rss_rows(out)
    lines += ["", "How each row is measured (the scripts' docstrings say more):", "",
              "- **Bytes a sample:** " + size_details(out)[0],
              "- **Write CPU, sustained, RSS:** `history_load.py` (details below). Ours counts the sampler "
              "(system collector, snapshot, JSON, flattening) and the storage writer thread, per value sampled; "
              "Prometheus' column is its whole process (HTTP scrape, parsing, head, WAL, GC) per sample ingested, "
              "so it carries work ours leaves to the POST handlers (\"registry updates\" below). Each run lasts "
              "%d s after 130 s of samples written beforehand, so it compacts once a minute as a running "
              "dashboard does, but prunes nothing (retention keeps an hour).",
              "- **Query latency:** `history_query.py` (details below): the same samples on both sides, a real "
              "server process and a real Prometheus, taking turns; ours answers avg, min and max a bucket (whole "
              "10-second slots from the groups' summaries: about 360 buckets for 600 points asked), `query_range` one "
              "sample a step (the target's row), and, as a reference answering what ours does, min, avg and max "
              "a step in one query (`*_over_time` at the step; `avg_over_time` alone is timed too, below). %s "
              "The samples end when "
              "each set is written and every query asks for the window ending at that moment, so the last "
              "minutes of a window hold nothing on either side (`query_range` carries the last sample forward "
              "up to 5 min, its lookback). Prometheus reads blocks of up to 18 h that promtool built, its "
              "compaction off; a live one would hold the newest 2 h in its head, in memory."]
    lines[-2] %= out["load"]["seconds"]
    lines[-1] %= extra_series(out)
    lines += ["", "## Write cost, keeping up, RSS (history_load.py)", ""]
    lines += history_load.report(out["load"]).split("\n")[2:]
    lines += ["## Query latency (history_query.py)", ""]
    lines += history_query.report(out["query"]).split("\n")[2:]
    return "\n".join(lines).rstrip("\n") + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes, to try the run")
    parser.add_argument("--reference", default=history_load.REFERENCE, help="the main before #23 (3411770)")
    for key, value in FULL.items():
        parser.add_argument("--" + key.replace("_", "-"), type=type(value), default=None,
                            help="default %s (--quick: %s)" % (value, QUICK[key]))
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the numbers as JSON")
    args = parser.parse_args()
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for tool in ("prometheus", "promtool"):
        if shutil.which(tool) is None:
            parser.error("%s is not installed (Debian: apt-get install prometheus)" % tool)
    out = run(args)
    text = report(out)
    target = ROOT / "bench" / "RESULTS-storage.md"
    notes = NOTES_MARK + "\n"  # what a person wrote about the numbers stays through a new run
    if target.exists() and NOTES_MARK in target.read_text(encoding="utf-8"):
        notes = NOTES_MARK + target.read_text(encoding="utf-8").split(NOTES_MARK, 1)[1]
    target.write_text(text + "\n" + notes, encoding="utf-8")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1), encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
