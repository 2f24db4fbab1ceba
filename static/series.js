// The series of one snapshot, keyed as the server keys them in /api/metrics/history:
// "system.cpu_percent", "system.cpu_core_0_percent", "counters.jobs", "gauges.depth",
// "server.clients". The server's own flattening (flatten_snapshot in sse_dashboard) is the
// reference: tests/test_js_modules.py runs both on the same snapshots and requires the same
// answer, so the page's live points and the stored history cannot drift apart.

import { isNum } from "./format.js";

export function flattenSnapshot(snap) {
  const out = {};
  const system = snap.system || {};
  for (const key in system) {
    if (key === "cpu_per_core" && Array.isArray(system[key])) {
      system[key].forEach((v, i) => { if (isNum(v)) out["system.cpu_core_" + i + "_percent"] = v; });
    } else if (isNum(system[key])) out["system." + key] = system[key];
  }
  for (const section of ["counters", "gauges"]) {
    const values = snap[section] || {};
    for (const name in values) if (isNum(values[name])) out[section + "." + name] = values[name];
  }
  const server = snap.server || {};
  for (const key of ["clients", "rss_bytes"]) if (isNum(server[key])) out["server." + key] = server[key];
  return out;
}
