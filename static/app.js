// sse-dashboard page: one EventSource for metrics and events, polling as a fallback.
// Text from the server only ever goes in through textContent (never innerHTML).
(function () {
  "use strict";

  // ---- state -------------------------------------------------------------

  const STREAM_URL = "/api/metrics/stream";
  const POLL_MS = 2000;          // fallback polling period
  const RECONNECT_MS = 5000;     // our own reconnect after the browser gave up (CLOSED)
  const FAILURES_BEFORE_POLL = 3;
  const STALL_INTERVALS = 3;     // an open stream silent this many intervals has failed
  const MAX_EVENTS = 10;
  const LEVEL_CLASS = { info: "level-info", warning: "level-warning", error: "level-error" };
  const MODE_TEXT = { connecting: "CONNECTING", live: "LIVE", polling: "POLLING", disconnected: "DISCONNECTED" };
  const MODE_TITLE = { connecting: "… ", live: "● ", polling: "◐ ", disconnected: "✕ " };

  const state = {
    mode: "connecting",
    bootId: null,          // the server run; seq restarts when it changes
    lastSeq: 0,
    lastEventId: 0,
    intervalMs: 1000,
    failures: 0,           // stream failures in a row
    lastFrameAt: 0,
    source: null,          // the EventSource
    pollTimer: null,
    reconnectTimer: null,
    events: new Map(),     // id -> event, for de-duplication
  };

  const $ = (id) => document.getElementById(id);

  // ---- formatting (raw units in, text out) --------------------------------

  function isNum(v) { return typeof v === "number" && isFinite(v); }

  function formatBytes(v) {
    if (!isNum(v)) return "—";
    const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let i = 0;
    while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return (i === 0 ? v.toFixed(0) : v.toFixed(1)) + " " + units[i];
  }
  function formatRate(v) { return isNum(v) ? formatBytes(v) + "/s" : "—"; }
  function formatPercent(v) { return isNum(v) ? v.toFixed(1) + " %" : "—"; }
  function formatNumber(v) {
    if (!isNum(v)) return "—";
    return Number.isInteger(v) ? v.toLocaleString("en-US") : v.toLocaleString("en-US", { maximumFractionDigits: 3 });
  }
  function formatDuration(s) {
    if (!isNum(s)) return "—";
    s = Math.floor(s);
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d) return d + "d " + h + "h";
    if (h) return h + "h " + m + "m";
    return m + "m " + (s % 60) + "s";
  }
  function formatTime(ts) { return isNum(ts) ? new Date(ts * 1000).toLocaleTimeString() : "—"; }

  const FORMATS = {
    percent: formatPercent, bytes: formatBytes, rate: formatRate, number: formatNumber,
    duration: formatDuration, fixed2: (v) => (isNum(v) ? v.toFixed(2) : "—"),
    text: (v) => (typeof v === "string" ? v : ""),
  };

  // ---- rendering ----------------------------------------------------------

  function setMode(mode) {
    if (state.mode === mode) return;
    state.mode = mode;
    const el = $("status");
    el.className = "status status-" + mode;
    $("status-text").textContent = MODE_TEXT[mode];
    document.title = MODE_TITLE[mode] + "sse-dashboard";
  }

  function renderSystem(system) {
    for (const el of document.querySelectorAll("[data-field]")) {
      const format = FORMATS[el.dataset.format] || formatNumber;
      el.textContent = format(system[el.dataset.field]);
    }
    $("source").textContent = system.source ? "(" + system.source + ")" : "";
    const err = $("system-error");
    err.hidden = !system.error;
    err.textContent = system.error ? "collector error: " + system.error : "";
    renderCores(Array.isArray(system.cpu_per_core) ? system.cpu_per_core : []);
  }

  function renderCores(cores) {
    const box = $("cores");
    while (box.children.length > cores.length) box.lastChild.remove();
    while (box.children.length < cores.length) {
      const bar = document.createElement("div");
      bar.className = "core";
      bar.appendChild(document.createElement("span"));
      box.appendChild(bar);
    }
    cores.forEach((pct, i) => {
      const bar = box.children[i];
      const value = isNum(pct) ? Math.max(0, Math.min(100, pct)) : 0;
      bar.firstChild.style.width = value + "%";
      bar.title = "core " + i + ": " + formatPercent(pct);
    });
  }

  function renderTable(tbody, values) {
    const names = Object.keys(values || {}).sort();
    const rows = new Map([...tbody.rows].map((r) => [r.dataset.name, r]));
    names.forEach((name, i) => {
      let row = rows.get(name);
      if (!row) {
        row = document.createElement("tr");
        row.dataset.name = name;
        const th = document.createElement("th");
        th.scope = "row";
        th.textContent = name;
        row.appendChild(th);
        row.appendChild(document.createElement("td"));
      }
      if (tbody.rows[i] !== row) tbody.insertBefore(row, tbody.rows[i] || null);
      row.cells[1].textContent = formatNumber(values[name]);
    });
    for (const [name, row] of rows) if (!(name in values)) row.remove();
    return names.length;
  }

  function renderServer(server) {
    server = server || {};
    $("server-clients").textContent = formatNumber(server.clients);
    $("server-rss").textContent = formatBytes(server.rss_bytes);
    $("server-uptime").textContent = formatDuration(server.uptime);
  }

  function flashUpdated(ts) {
    const el = $("updated");
    el.textContent = formatTime(ts);
    if (el.animate) el.animate([{ opacity: 0.2 }, { opacity: 1 }], { duration: 400 });
  }

  function renderEvents() {
    const list = $("events");
    const newest = [...state.events.values()].sort((a, b) => b.id - a.id).slice(0, MAX_EVENTS);
    list.replaceChildren(...newest.map(eventItem));
    $("no-events").hidden = newest.length > 0;
  }

  function eventItem(ev) {
    const li = document.createElement("li");
    li.className = "event " + (LEVEL_CLASS[ev.level] || "level-info");
    li.dataset.id = String(ev.id);
    const parts = [
      ["time", "event-time", formatTime(ev.ts)],
      ["span", "event-level", String(ev.level || "info").toUpperCase()],
      ["span", "event-source", String(ev.source || "")],
      ["span", "event-message", String(ev.message || "")],
    ];
    for (const [tag, cls, text] of parts) {
      const el = document.createElement(tag);
      el.className = cls;
      el.textContent = text;
      li.appendChild(el);
    }
    return li;
  }

  // ---- data ---------------------------------------------------------------

  function applySnapshot(snap) {
    if (!snap || !isNum(snap.seq)) return;
    if (snap.boot_id !== state.bootId) {
      // A new server run: its seq and event ids start again.
      const restarted = state.bootId !== null;
      state.bootId = snap.boot_id;
      state.lastSeq = 0;
      if (restarted) reloadEvents();
    }
    if (snap.seq <= state.lastSeq) return; // stale (e.g. a late poll after the stream resumed)
    state.lastSeq = snap.seq;
    if (isNum(snap.interval) && snap.interval > 0) state.intervalMs = snap.interval * 1000;
    renderSystem(snap.system || {});
    const n = renderTable($("counters"), snap.counters) + renderTable($("gauges"), snap.gauges);
    $("no-metrics").hidden = n > 0;
    renderServer(snap.server);
    flashUpdated(snap.ts);
  }

  function addEvents(events) {
    for (const ev of events) {
      if (!ev || !isNum(ev.id)) continue;
      state.events.set(ev.id, ev);
      if (ev.id > state.lastEventId) state.lastEventId = ev.id;
    }
    // Keep the de-duplication map bounded too.
    if (state.events.size > MAX_EVENTS * 5) {
      const keep = [...state.events.keys()].sort((a, b) => b - a).slice(0, MAX_EVENTS);
      state.events = new Map(keep.map((id) => [id, state.events.get(id)]));
    }
    renderEvents();
  }

  async function getJSON(url) {
    const res = await fetch(url, { cache: "no-store" });
    if (!res.ok) throw new Error(url + ": HTTP " + res.status);
    return res.json();
  }

  async function reloadEvents() {
    try {
      const body = await getJSON("/api/events?limit=" + MAX_EVENTS);
      state.events = new Map();
      state.lastEventId = 0;
      addEvents(body.events || []);
      if (isNum(body.last_id)) state.lastEventId = body.last_id;
      return true;
    } catch (e) {
      return false;
    }
  }

  // ---- transport ----------------------------------------------------------

  function connect() {
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = null;
    if (!window.EventSource) { startPolling(); return; }
    closeStream();
    const params = new URLSearchParams({ lastEventId: String(state.lastEventId) });
    if (state.bootId) params.set("boot", state.bootId);
    const source = new EventSource(STREAM_URL + "?" + params);
    state.source = source;
    source.onopen = () => {
      state.failures = 0;
      state.lastFrameAt = Date.now();
      stopPolling();
      setMode("live");
    };
    source.addEventListener("metrics", (e) => { frameArrived(); applySnapshot(JSON.parse(e.data)); });
    source.addEventListener("log", (e) => { frameArrived(); addEvents([JSON.parse(e.data)]); });
    source.addEventListener("resync", () => { frameArrived(); reloadEvents(); });
    source.onerror = () => streamFailed(source);
  }

  function frameArrived() {
    state.lastFrameAt = Date.now();
    if (state.mode !== "live") { stopPolling(); setMode("live"); }
  }

  function streamFailed(source) {
    if (source !== state.source) return;
    state.failures += 1;
    if (state.mode === "live" || state.mode === "connecting") setMode("disconnected");
    // While CONNECTING the browser retries by itself (honouring retry:); once
    // CLOSED (HTTP error, wrong type) it has given up, so we try again ourselves.
    if (source.readyState === EventSource.CLOSED) scheduleReconnect();
    if (state.failures >= FAILURES_BEFORE_POLL) startPolling();
  }

  function scheduleReconnect() {
    if (state.reconnectTimer === null) state.reconnectTimer = setTimeout(connect, RECONNECT_MS);
  }

  function closeStream() {
    if (state.source) {
      state.source.onerror = null;
      state.source.close();
      state.source = null;
    }
  }

  function checkStall() {
    // A stream that is open but silent (a buffering proxy or antivirus) has failed.
    if (state.mode !== "live" || !state.source) return;
    const limit = Math.max(3000, STALL_INTERVALS * state.intervalMs);
    if (Date.now() - state.lastFrameAt > limit) {
      state.failures = Math.max(state.failures + 1, FAILURES_BEFORE_POLL);
      closeStream();
      setMode("disconnected");
      startPolling();
      scheduleReconnect();
    }
  }

  function startPolling() {
    if (state.pollTimer !== null) return;
    state.pollTimer = setInterval(poll, POLL_MS);
    poll();
  }

  function stopPolling() {
    if (state.pollTimer === null) return;
    clearInterval(state.pollTimer);
    state.pollTimer = null;
  }

  async function poll() {
    try {
      const [snap, evs] = await Promise.all([
        getJSON("/api/metrics"),
        getJSON("/api/events?since=" + state.lastEventId + "&limit=" + MAX_EVENTS),
      ]);
      if (state.pollTimer === null) return; // the stream came back meanwhile
      applySnapshot(snap);
      if (evs.boot_id && evs.boot_id !== state.bootId) return;
      addEvents(evs.events || []);
      setMode("polling");
      // Keep trying the stream in the background; it wins as soon as it opens.
      if (window.EventSource && (!state.source || state.source.readyState === EventSource.CLOSED)) scheduleReconnect();
    } catch (e) {
      if (state.pollTimer !== null) setMode("disconnected");
    }
  }

  async function start() {
    document.title = MODE_TITLE.connecting + "sse-dashboard";
    await reloadEvents();
    connect();
    setInterval(checkStall, 1000);
    // One stream per tab, closed when the tab goes away (browsers allow 6 per host).
    window.addEventListener("pagehide", () => { closeStream(); stopPolling(); });
    window.addEventListener("pageshow", (e) => { if (e.persisted) connect(); });
  }

  start();
})();
