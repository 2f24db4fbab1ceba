// The fleet page (#25): every dashboard the engine holds, those in trouble first, live.
// The listing comes over the stream (/api/metrics/stream?fleet=1: an "fleet" frame each time the
// server has asked the engine) or, while the stream is down, from GET /api/fleet every few seconds.
// The server asks the engine; this page never talks to it. Names, versions and URLs come from the
// engine (whatever the dashboards pushed): they go in through textContent only, and a URL becomes a
// link only when it is http or https (fleetLink).

import { formatDuration, formatPercent, formatTime, isNum } from "./format.js";

// types=fleet: no event can have that type (it is reserved), so the stream carries no events.
const STREAM_URL = "/api/metrics/stream?metrics=0&fleet=1&names=log&types=fleet";
const POLL_MS = 3000;
const RECONNECT_MS = 5000;
const MODE_TEXT = { connecting: "CONNECTING", live: "LIVE", polling: "POLLING", disconnected: "DISCONNECTED" };
const CELLS = [["fleet-state", "state"], ["fleet-seen", "last seen"], ["fleet-cpu", "CPU"], ["fleet-spark-cell", "last hour"],
               ["fleet-memory", "memory"], ["fleet-disk", "disk"], ["fleet-alerts", "alerts"], ["fleet-jobs", "jobs down"]];
const SVG = "http://www.w3.org/2000/svg";

// A URL the page may link to: absolute http(s) only (never javascript:, data: or a relative path).
export function fleetLink(url) {
  if (typeof url !== "string") return null;
  try {
    const parsed = new URL(url);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch (e) {
    return null;
  }
}

// Silent first, then alerts firing, then jobs down, then by name (the server sends them so too).
export function fleetOrder(a, b) {
  const rank = (r) => (r.stale ? 0 : r.alerts_firing > 0 ? 1 : r.jobs_down > 0 ? 2 : 3);
  return rank(a) - rank(b) || (a.instance < b.instance ? -1 : a.instance > b.instance ? 1 : 0);
}

// The points of a sparkline of values 0..100 in a width x height box (nulls are skipped). A lone
// point (a dashboard pushing for less than a minute) is drawn as a short tick: a polyline of one
// point draws nothing.
export function sparkPoints(values, width, height) {
  const n = values.length;
  const parts = [];
  values.forEach((v, i) => {
    if (!isNum(v)) return;
    const x = n > 1 ? (i / (n - 1)) * width : width;
    const y = height - (Math.max(0, Math.min(100, v)) / 100) * height;
    parts.push([x, y]);
  });
  if (parts.length === 1) parts.unshift([Math.max(0, parts[0][0] - 3), parts[0][1]]);
  return parts.map(([x, y]) => x.toFixed(1) + "," + y.toFixed(1)).join(" ");
}

function start() {
  const $ = (id) => document.getElementById(id);
  const state = { mode: "connecting", source: null, pollTimer: null, reconnectTimer: null };
  const rows = new Map();  // instance -> <tr>

  const stored = localStorage.getItem("sse-dashboard-theme");
  const dark = stored ? stored === "dark" : window.matchMedia("(prefers-color-scheme: dark)").matches;
  document.documentElement.dataset.theme = dark ? "dark" : "light";

  function setMode(mode) {
    state.mode = mode;
    $("status").className = "status status-" + mode;
    $("status-text").textContent = MODE_TEXT[mode];
    document.title = (mode === "live" || mode === "polling" ? "" : "\u2715 ") + "Fleet \u00b7 sse-dashboard";
  }

  function makeRow(instance) {
    const row = document.createElement("tr");
    row.dataset.instance = instance;
    const th = document.createElement("th");
    th.scope = "row";
    row.append(th);
    for (const [cls, label] of CELLS) {
      const td = document.createElement("td");
      td.className = cls;
      td.dataset.label = label;
      row.append(td);
    }
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "fleet-spark");
    svg.setAttribute("viewBox", "0 0 100 20");
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("role", "img");
    svg.append(document.createElementNS(SVG, "polyline"));
    row.querySelector(".fleet-spark-cell").append(svg);
    return row;
  }

  function fillRow(row, r) {
    const th = row.querySelector("th");
    const href = fleetLink(r.url);
    let name = th.firstChild;
    const wantTag = href ? "A" : "SPAN";
    if (!name || name.tagName !== wantTag) {
      name = document.createElement(wantTag.toLowerCase());
      name.className = "fleet-name";
      th.replaceChildren(name);
    }
    name.textContent = r.instance;
    if (href) name.href = href;
    name.title = r.version ? "sse-dashboard " + r.version : "";
    row.classList.toggle("fleet-stale", !!r.stale);
    const st = row.querySelector(".fleet-state");
    st.className = "fleet-state " + (r.stale ? "state-bad" : r.alerts_firing > 0 || r.jobs_down > 0 ? "state-warn" : "state-ok");
    st.textContent = r.stale ? "silent" : r.alerts_firing > 0 ? "alerts" : r.jobs_down > 0 ? "jobs down" : "ok";
    row.querySelector(".fleet-seen").textContent = isNum(r.age_s) ? (r.age_s < 1 ? "just now" : formatDuration(r.age_s) + " ago") : "\u2014";
    row.querySelector(".fleet-cpu").textContent = formatPercent(r.cpu_percent);
    row.querySelector(".fleet-memory").textContent = formatPercent(r.memory_percent);
    row.querySelector(".fleet-disk").textContent = formatPercent(r.disk_percent);
    row.querySelector(".fleet-alerts").textContent = isNum(r.alerts_firing) ? String(r.alerts_firing) : "\u2014";
    row.querySelector(".fleet-jobs").textContent = isNum(r.jobs_down) ? String(r.jobs_down) : "\u2014";
    const history = Array.isArray(r.cpu_history) ? r.cpu_history : [];
    const svg = row.querySelector("svg");
    svg.querySelector("polyline").setAttribute("points", sparkPoints(history, 100, 20));
    svg.setAttribute("aria-label", "CPU over the last hour, " + history.filter(isNum).length + " points");
  }

  function render(listing) {
    if (!listing || typeof listing !== "object") return;
    const engine = listing.engine || {};
    const ok = engine.state === "ok";
    const el = $("engine");
    el.className = "engine " + (ok ? "engine-ok" : engine.state === "starting" ? "" : "engine-down");
    el.textContent = "Engine " + String(engine.url || "") + ": " +
      (ok ? "answering" : engine.state === "starting" ? "not asked yet" :
        (engine.state === "down" ? "DOWN" : "ERROR") + " \u2014 " + String(engine.error || "") +
        (isNum(listing.as_of) ? " (showing what it said at " + formatTime(listing.as_of) + ")" : ""));
    $("updated").textContent = formatTime(engine.checked_at);
    const list = (Array.isArray(listing.instances) ? listing.instances : [])
      .filter((r) => r && typeof r.instance === "string").sort(fleetOrder);
    const seen = new Set();
    const ordered = [];
    for (const r of list) {
      let row = rows.get(r.instance);
      if (!row) { row = makeRow(r.instance); rows.set(r.instance, row); }
      fillRow(row, r);
      seen.add(r.instance);
      ordered.push(row);
    }
    for (const key of [...rows.keys()]) if (!seen.has(key)) rows.delete(key);
    $("fleet").replaceChildren(...ordered);
    const silent = list.filter((r) => r.stale).length;
    const alerting = list.filter((r) => r.alerts_firing > 0).length;
    $("fleet-summary").textContent = list.length + " instance" + (list.length === 1 ? "" : "s") + ", " + silent +
      " silent, " + alerting + " with alerts firing" + (listing.truncated ? " (the first " + listing.max_instances + " shown)" : "");
    $("fleet-empty").hidden = list.length > 0 || engine.state !== "ok";
  }

  async function poll() {
    try {
      const res = await fetch("/api/fleet", { cache: "no-store" });
      $("auth-note").hidden = res.status !== 401;
      $("no-fleet").hidden = res.status !== 404;
      if (!res.ok) throw new Error("HTTP " + res.status);
      render(await res.json());
      if (state.mode !== "live") setMode("polling");
    } catch (e) {
      if (state.mode !== "live") setMode("disconnected");
    }
  }

  function startPolling() {
    if (state.pollTimer === null) state.pollTimer = setInterval(poll, POLL_MS);
  }

  function connect() {
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = null;
    if (!window.EventSource) { startPolling(); poll(); return; }
    const source = new EventSource(STREAM_URL);
    state.source = source;
    source.onopen = () => {
      setMode("live");
      clearInterval(state.pollTimer);
      state.pollTimer = null;
    };
    source.addEventListener("fleet", (e) => {
      try { render(JSON.parse(e.data)); } catch (err) { /* a bad frame: the next one replaces it */ }
      if (state.mode !== "live") setMode("live");
    });
    source.onerror = () => {
      if (source !== state.source) return;
      setMode("disconnected");
      startPolling();
      if (source.readyState === EventSource.CLOSED) {
        // An HTTP error (401, 404 without --fleet): the browser gave up; polling says why, and we retry.
        poll();
        state.reconnectTimer = setTimeout(connect, RECONNECT_MS);
      }
    };
  }

  window.addEventListener("pagehide", () => { if (state.source) state.source.close(); });
  poll();
  connect();
}

if (typeof document !== "undefined") start();
