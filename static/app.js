// sse-dashboard page. One EventSource per browser (one tab holds it and shares frames
// with the others over a BroadcastChannel), polling as a fallback, canvas charts.
// Text from the server only ever goes in through textContent (never as HTML).
// A native module (no build step): formatting and chart axes are their own modules.
import { formatBytes, formatBytesCompact, formatDuration, formatNumber, formatPercent, formatPerSecond, formatRate, formatTime,
  isNum } from "./format.js";
import { flattenSnapshot } from "./series.js";
import { createTransport } from "./transport.js";
import { createCharts } from "./charts.js";
import { createJobs } from "./jobs.js";
import { renderRemoteWrite } from "./remote.js";
import { withShare } from "./share.js";

(function () {

  // ---- state ----------------------------------------------------------------

  const SHOWN_EVENTS = 10;       // rows in the event list
  const KEPT_EVENTS = 500;       // events kept for filtering and search
  const HISTORY_SECONDS = 900;   // what charts can show
  const CHART_SECONDS = 300;     // the main charts' window
  const SPARK_SECONDS = 60;
  const LEVEL_CLASS = { info: "level-info", warning: "level-warning", error: "level-error" };
  const MODE_TEXT = { connecting: "CONNECTING", live: "LIVE", polling: "POLLING", disconnected: "DISCONNECTED" };
  const MODE_TITLE = { connecting: "\u2026 ", live: "\u25CF ", polling: "\u25D0 ", disconnected: "\u2715 " };

  const state = {
    mode: "connecting",
    bootId: null,          // the server run; seq restarts when it changes
    epoch: null,           // the event-id space; new only when the server's event store is new
    lastSeq: 0,
    lastEventId: 0,
    intervalMs: 1000,
    failures: 0,           // stream failures in a row
    lastFrameAt: 0,
    source: null,          // our EventSource, when this tab holds the stream
    leader: true,          // false while another tab holds the stream for us
    pollTimer: null,
    reconnectTimer: null,
    events: new Map(),     // id -> event (de-duplication, filters)
    paused: false,
    unseenAlerts: 0,
    firing: 0,             // alerts firing now (title and icon)
    lastSystem: null,      // the newest sample's system part (redrawn when a device filter changes)
    processesTimer: null,  // the next read of /api/processes, while its panel is open
    alertKeys: null,       // the firing alerts of the last snapshot (null before the first)
    range: { seconds: 300, zoom: null },  // the main charts' span (the URL says it too)
    pins: [],              // pinned series keys (counters.x:rate, gauges.y)
    defaultOrder: [],      // the sections as the page has them
    lastCounters: null,    // {ts, values} for rates
  };

  const $ = (id) => document.getElementById(id);

  const compactRate = (v) => formatBytesCompact(v) + "/s";
  const percentTick = (v) => v + " %";

  // What a chart's axis says, from how its values are written.
  function axisFor(format) {
    if (format === formatRate) return { unit: "bytes", tickFormat: compactRate };
    if (format === formatBytes) return { unit: "bytes", tickFormat: formatBytesCompact };
    if (format === formatPercent) return { unit: "number", tickFormat: percentTick };
    return { unit: "number", tickFormat: null };
  }

  const FORMATS = {
    percent: formatPercent, bytes: formatBytes, rate: formatRate, number: formatNumber,
    duration: formatDuration, persecond: formatPerSecond,
    fixed2: (v) => (isNum(v) ? v.toFixed(2) : "\u2014"),
    text: (v) => (typeof v === "string" ? v : ""),
  };

  // ---- history (ring buffers of recent points, per series key) ---------------

  const history = { ts: [], series: new Map() };

  function maxPoints() { return Math.ceil(HISTORY_SECONDS * 1000 / state.intervalMs) + 1; }

  function pushPoint(ts, values) {
    const n = history.ts.length;
    if (n && ts <= history.ts[n - 1]) return;
    history.ts.push(ts);
    for (const [key, arr] of history.series) { arr.push(key in values ? values[key] : null); }
    for (const key in values) {
      if (!history.series.has(key)) {
        const arr = new Array(n).fill(null);
        arr.push(values[key]);
        history.series.set(key, arr);
      }
    }
    const excess = history.ts.length - maxPoints();
    if (excess > 0) {
      history.ts.splice(0, excess);
      for (const arr of history.series.values()) arr.splice(0, excess);
    }
  }

  function clearHistory() {
    history.ts = [];
    history.series = new Map();
    state.lastCounters = null;
  }

  function addRates(ts, flat) {
    const prev = state.lastCounters;
    for (const key in flat) {
      if (!key.startsWith("counters.") || !prev) continue;
      const dt = ts - prev.ts;
      if (dt > 0 && key in prev.values && flat[key] >= prev.values[key]) {
        flat[key + ":rate"] = (flat[key] - prev.values[key]) / dt;
      }
    }
    state.lastCounters = { ts, values: flat };
    return flat;
  }

  async function seedHistory() {
    try {
      // Every point of the live window (the page's own buffer holds them): the cap, not the default.
      const body = await getJSON("/api/metrics/history?points=10000&seconds=" + HISTORY_SECONDS);
      if (isNum(body.interval) && body.interval > 0) state.intervalMs = body.interval * 1000;
      const keys = Object.keys(body.series || {});
      (body.ts || []).forEach((ts, i) => {
        const flat = {};
        for (const key of keys) {
          const v = body.series[key][i];
          if (isNum(v)) flat[key] = v;
        }
        pushPoint(ts, addRates(ts, flat));
      });
      scheduleDraw();
    } catch (e) { /* charts then grow from the stream */ }
  }

  // ---- charts (charts.js): canvas drawing, axes, markers, hover, zoom ---------------------

  const { charts, registerChart, scheduleDraw, visibleRange, cssVar } = createCharts({
    history, events: () => state.events.values(), liveSeconds: CHART_SECONDS,
    onMarkClick: (ev) => showEvent(ev),
    onZoom: (start, end) => setMainRange(state.range.seconds, [start, end]),
    onReset: () => setMainRange(CHART_SECONDS, null),
  });

  // Clicking a marker shows its event in the list: the list is set to find it.
  function showEvent(ev) {
    state.paused = false;
    $("event-level").value = "";
    $("event-search").value = String(ev.message || "");
    renderEvents();
    const item = document.querySelector('#events li[data-id="' + String(ev.id) + '"]');
    if (item) {
      item.classList.add("event-found");
      item.tabIndex = -1;
      item.scrollIntoView({ block: "center" });
      item.focus();
    }
  }

  // ---- the main charts' time range: live, a stored span, or a zoom; kept in the URL ------

  const RANGE_NAMES = { 300: "5m", 900: "15m", 3600: "1h", 21600: "6h", 86400: "24h", 604800: "7d" };
  const mainCharts = () => charts.filter((c) => c.main);
  let rangeTimer = null;

  function rangeFromUrl() {
    const params = new URLSearchParams(location.search);
    const byName = Object.entries(RANGE_NAMES).find(([, name]) => name === params.get("range"));
    const from = Number(params.get("from")), to = Number(params.get("to"));
    return { seconds: byName ? Number(byName[0]) : CHART_SECONDS,
             zoom: isNum(from) && isNum(to) && to > from && params.has("from") ? [from, to] : null };
  }

  function rangeToUrl(seconds, zoom) {
    const params = new URLSearchParams(location.search);
    params.delete("range"); params.delete("from"); params.delete("to");
    if (seconds !== CHART_SECONDS) params.set("range", RANGE_NAMES[seconds]);
    if (zoom) { params.set("from", zoom[0].toFixed(0)); params.set("to", zoom[1].toFixed(0)); }
    const query = params.toString();
    history_replace(location.pathname + (query ? "?" + query : "") + location.hash);
  }

  function history_replace(url) { window.history.replaceState(null, "", url); }

  // Up to 15 minutes the page's own buffer serves; longer spans come from stored history
  // (full resolution, then one-minute averages with their min-max band), refreshed each minute.
  let rangeToken = 0;

  async function setMainRange(seconds, zoom) {
    const token = ++rangeToken;
    state.range = { seconds, zoom };
    for (const b of document.querySelectorAll("[data-main-range]")) {
      b.setAttribute("aria-pressed", String(Number(b.dataset.mainRange) === seconds && !zoom));
    }
    $("back-to-live").hidden = seconds === CHART_SECONDS && !zoom;
    clearTimeout(rangeTimer);
    let source = null;
    $("range-note").textContent = "";
    if (seconds > HISTORY_SECONDS) {
      try {
        const body = await getJSON("/api/metrics/history?names=" + encodeURIComponent(mainSeriesNames().join(",")) +
          "&points=" + chartPoints() + "&seconds=" + seconds);
        source = { ts: body.ts || [], series: new Map(Object.entries(body.series || {})), bands: {} };
        for (const key of Object.keys(body.min || {})) {
          if (body.max && body.max[key]) source.bands[key] = { min: body.min[key], max: body.max[key] };
        }
        for (const key of state.pins.filter((k) => k.endsWith(":rate"))) {  // pinned counters: as rates
          const totals = source.series.get(key.slice(0, -5)) || [];
          source.series.set(key, totals.map((v, i) => (i && isNum(v) && isNum(totals[i - 1]) && v >= totals[i - 1] ?
            (v - totals[i - 1]) / (source.ts[i] - source.ts[i - 1]) : null)));
        }
        $("range-note").textContent = body.resolution === "rollup" || body.downsampled ? "stored history: averages per " +
          formatDuration(body.interval) + " with their min\u2013max band" : "stored history";
      } catch (e) {
        $("range-note").textContent = "could not load the stored history";
      }
      if (!zoom) rangeTimer = setTimeout(() => setMainRange(seconds, null), 60000);
    }
    if (token !== rangeToken) return;  // another choice came while this one loaded: it wins
    for (const chart of mainCharts()) {
      chart.seconds = seconds;
      chart.source = source;
      chart.window = zoom;
    }
    if (zoom) $("range-note").textContent = formatTime(zoom[0]) + " \u2013 " + formatTime(zoom[1]) +
      " (double-click a chart or \u201cback to live\u201d to return)";
    rangeToUrl(seconds, zoom);
    scheduleDraw();
  }

  // The big chart in a dialog, for any series a person clicks.
  let detailChart = null;

  function openDetail(key, title, format) {
    const dialog = $("detail");
    $("detail-title").textContent = title;
    if (!detailChart) detailChart = registerChart($("detail-canvas"), { keys: [], seconds: HISTORY_SECONDS });
    detailChart.keys = [key];
    detailChart.format = format || formatNumber;
    Object.assign(detailChart, axisFor(detailChart.format), { title });
    detailChart.labels = { [key]: title };
    showDetailRange(HISTORY_SECONDS);
    if (dialog.showModal) dialog.showModal(); else dialog.setAttribute("open", "");
    scheduleDraw();
  }

  // The series the main charts draw (a pinned counter's rate from its totals): the server reads
  // only these, not every series it keeps.
  function mainSeriesNames() {
    const names = new Set();
    for (const chart of mainCharts()) {
      for (const key of (typeof chart.keys === "function" ? chart.keys() : chart.keys)) names.add(key.replace(/:rate$/, ""));
    }
    return [...names].slice(0, 100);
  }

  // About a point per pixel of the widest chart (the server averages longer windows into buckets,
  // with their min-max band).
  function chartPoints() {
    return Math.max(200, Math.min(2000, Math.round(document.documentElement.clientWidth || 1000)));
  }

  // Longer ranges come from the server (its stored history: full resolution, then
  // one-minute averages); the live 15 minutes come from this page's own buffer.
  async function showDetailRange(seconds) {
    for (const b of document.querySelectorAll("[data-range]")) {
      b.setAttribute("aria-pressed", String(Number(b.dataset.range) === seconds));
    }
    detailChart.seconds = seconds;
    detailChart.source = null;
    $("detail-note").textContent = "";
    if (seconds > HISTORY_SECONDS) {
      const key = detailChart.keys[0];
      const base = key.replace(/:rate$/, "");
      try {
        // One series, about as many points as the chart is wide: the server reads no more than that.
        const body = await getJSON("/api/metrics/history?names=" + encodeURIComponent(base) + "&points=" +
          chartPoints() + "&seconds=" + seconds);
        const source = { ts: body.ts || [], series: new Map() };
        const values = (body.series || {})[base] || [];
        if (key.endsWith(":rate")) {
          source.series.set(key, values.map((v, i) => (i && isNum(v) && isNum(values[i - 1]) && v >= values[i - 1] ?
            (v - values[i - 1]) / (source.ts[i] - source.ts[i - 1]) : null)));
        } else {
          source.series.set(key, values);
          // Roll-ups carry each bucket's min and max: drawn as a band around the average.
          if (body.min && body.max && body.min[base] && body.max[base]) {
            source.bands = { [key]: { min: body.min[base], max: body.max[base] } };
          }
        }
        if (detailChart.seconds === seconds) detailChart.source = source;
        $("detail-note").textContent = body.resolution === "rollup" || body.downsampled ?
          "averages per " + formatDuration(body.interval) + (source.bands ? ", with the min–max band" : "") : "";
      } catch (e) {
        $("detail-note").textContent = "could not load the history";
      }
    }
    scheduleDraw();
  }

  // ---- rendering -------------------------------------------------------------

  function setMode(mode) {
    if (state.mode === mode) return;
    state.mode = mode;
    $("status").className = "status status-" + mode;
    $("status-text").textContent = MODE_TEXT[mode];
    updateTitle();
  }

  function updateTitle() {
    const firing = state.firing ? "\u26A0 " + state.firing + " firing \u00B7 " : "";
    const alerts = state.unseenAlerts ? "(" + state.unseenAlerts + ") " : "";
    document.title = MODE_TITLE[state.mode] + firing + alerts + "sse-dashboard";
  }

  // The tab's icon shows how many alerts fire (a data: URL: the CSP allows data: images only).
  function updateFavicon() {
    const icon = $("favicon");
    if (!state.firing) { icon.href = "/static/favicon.svg"; return; }
    const text = state.firing > 9 ? "9+" : String(state.firing);
    const svg = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" ' +
      'fill="#c62828"/><text x="8" y="12.5" font-size="11" font-family="sans-serif" font-weight="bold" ' +
      'text-anchor="middle" fill="#fff">' + text + "</text></svg>";
    icon.href = "data:image/svg+xml," + encodeURIComponent(svg);
  }

  // ---- desktop notifications: offered, never forced --------------------------------

  const NOTIFY_KEY = "sse-dashboard-desktop-alerts";

  function notifyAllowed() {
    return "Notification" in window && Notification.permission === "granted" &&
      localStorage.getItem(NOTIFY_KEY) === "on";
  }

  // One notification per alert firing (rule and start time), even with the tab in the background;
  // alerts already firing when the page opens are on screen, not news. Several open tabs each
  // try, and the shared tag lets the system show one.
  function notifyNewAlerts(alerts) {
    const keys = alerts.map((a) => String(a.rule) + "@" + String(a.since));
    if (state.alertKeys !== null && notifyAllowed()) {
      alerts.forEach((a, i) => {
        if (state.alertKeys.has(keys[i])) return;
        try {
          new Notification("sse-dashboard: " + String(a.rule || "alert"), {
            body: String(a.level || "").toUpperCase() + ": " + String(a.message || a.metric || ""),
            tag: "sse-dashboard:" + keys[i],
          });
        } catch (e) { /* a browser that only notifies from a service worker: the page still shows it */ }
      });
    }
    state.alertKeys = new Set(keys);
  }

  function renderNotifyToggle() {
    const button = $("notify-toggle");
    if (!("Notification" in window)) { button.hidden = true; return; }
    button.hidden = false;
    const denied = Notification.permission === "denied";
    const on = notifyAllowed();
    button.textContent = denied ? "Desktop alerts: blocked" : on ? "Desktop alerts: on" : "Desktop alerts: off";
    button.setAttribute("aria-pressed", String(on));
    button.disabled = denied;
    if (denied) button.title = "notifications are blocked for this site in the browser's settings";
  }

  async function toggleNotify() {
    if (notifyAllowed()) {
      localStorage.setItem(NOTIFY_KEY, "off");
    } else {
      const permission = Notification.permission === "granted" ? "granted" : await Notification.requestPermission();
      localStorage.setItem(NOTIFY_KEY, permission === "granted" ? "on" : "off");
    }
    renderNotifyToggle();
  }

  // Rows of text cells, rebuilt each sample (a machine has a handful of each; all text).
  function fillRows(tbody, items, cells, hidden) {
    tbody.replaceChildren(...items.map((item) => {
      const row = document.createElement("tr");
      cells(item).forEach((text, i) => {
        const cell = document.createElement(i === 0 ? "th" : "td");
        if (i === 0) cell.scope = "row";
        cell.textContent = text;
        row.append(cell);
      });
      if (hidden && hidden(item)) row.hidden = true;
      return row;
    }));
  }

  function renderDevices(system) {
    const list = (key) => (Array.isArray(system[key]) ? system[key] : []);
    fillRows($("filesystems"), list("filesystems"), (f) => [String(f.mountpoint), String(f.device), String(f.fstype),
      formatPercent(f.percent), formatBytes(f.free_bytes), formatBytes(f.total_bytes)]);
    const showVirtual = $("show-virtual").checked;
    fillRows($("interfaces"), list("interfaces"), (i) => [String(i.name), formatRate(i.recv_bytes_per_s),
      formatRate(i.sent_bytes_per_s)], (i) => i.virtual && !showVirtual);
    fillRows($("disks"), list("disks"), (d) => [String(d.device), formatRate(d.read_bytes_per_s),
      formatRate(d.write_bytes_per_s)]);
    const sensors = list("temperatures").map((t) => [String(t.sensor) + " " + String(t.label),
      isNum(t.celsius) ? t.celsius.toFixed(1) + " \u00B0C" : "\u2014"])
      .concat(list("fans").map((f) => [String(f.sensor) + " " + String(f.label), formatNumber(f.rpm) + " rpm"]));
    if (system.battery && isNum(system.battery.percent)) {
      sensors.push(["battery", system.battery.percent.toFixed(0) + " %" + (system.battery.plugged ? ", plugged in" : "")]);
    }
    $("sensors-table").hidden = sensors.length === 0;
    fillRows($("sensors"), sensors, (row) => row);
  }

  // ---- top processes: read only while the panel is open and the tab visible -------------

  const PROCESSES_EVERY_MS = 3000;

  async function refreshProcesses() {
    state.processesTimer = null;
    const panel = $("processes-panel");
    if (!panel.open || document.visibilityState === "hidden") return;
    try {
      const res = await fetch(withShare("/api/processes"), { cache: "no-store" });
      const top = await res.json();
      $("processes-note").textContent = top.available ? top.processes + " processes; CPU over the last " +
        top.interval_s + " s" : String(top.why || "not available here");
      const cells = (p) => [String(p.name), String(p.pid), isNum(p.cpu_percent) ? p.cpu_percent.toFixed(1) + " %" : "\u2014",
        formatBytes(p.rss_bytes)];
      fillRows($("processes-cpu"), top.cpu || [], cells);
      fillRows($("processes-memory"), top.memory || [], cells);
    } catch (e) {
      $("processes-note").textContent = "could not read the process list";
    }
    if (panel.open && state.processesTimer === null) state.processesTimer = setTimeout(refreshProcesses, PROCESSES_EVERY_MS);
  }

  function watchProcessesPanel() {
    const panel = $("processes-panel");
    const start = () => { if (panel.open && state.processesTimer === null) refreshProcesses(); };
    panel.addEventListener("toggle", start);
    document.addEventListener("visibilitychange", start);
  }

  function renderSystem(system) {
    state.lastSystem = system;
    renderDevices(system);
    for (const el of document.querySelectorAll("[data-field]")) {
      const format = FORMATS[el.dataset.format] || formatNumber;
      el.textContent = format(system[el.dataset.field]);
    }
    $("source").textContent = system.source ? "(" + system.source + ")" : "";
    const err = $("system-error");
    err.hidden = !system.error;
    err.textContent = system.error ? "collector error: " + system.error : "";
  }

  function renderTable(tbody, section, values, withRate) {
    const names = Object.keys(values || {}).sort();
    const rows = new Map([...tbody.rows].map((r) => [r.dataset.name, r]));
    names.forEach((name, i) => {
      let row = rows.get(name);
      const key = section + "." + name;
      if (!row) row = makeMetricRow(tbody, section, name, key, withRate);
      if (tbody.rows[i] !== row) tbody.insertBefore(row, tbody.rows[i] || null);
      row.querySelector(".value").textContent = formatNumber(values[name]);
      row.querySelector(".spark-range").textContent = windowRange(withRate ? key + ":rate" : key,
        withRate ? formatPerSecond : formatNumber);
      if (withRate) {
        const rates = history.series.get(key + ":rate");
        row.querySelector(".rate").textContent = formatPerSecond(rates ? rates[rates.length - 1] : null);
      }
    });
    for (const [name, row] of rows) if (!(name in values)) row.remove();
    return names.length;
  }

  // DELETE /api/metrics/{counters|gauges}/NAME: the metric and its stored history.
  async function deleteMetric(section, name, key, row) {
    if (!window.confirm("Delete " + section.slice(0, -1) + " \u201c" + name + "\u201d and its history?")) return;
    const res = await fetch("/api/metrics/" + section + "/" + encodeURIComponent(name), { method: "DELETE" });
    if (res.ok || res.status === 404) {
      history.series.delete(key);
      history.series.delete(key + ":rate");
      row.remove();
    } else {
      const body = await res.json().catch(() => ({}));
      window.alert("Could not delete " + name + ": " + (body.error || "HTTP " + res.status));
    }
  }

  function makeMetricRow(tbody, section, name, key, withRate) {
    const row = document.createElement("tr");
    row.dataset.name = name;
    const th = document.createElement("th");
    th.scope = "row";
    const button = document.createElement("button");
    button.type = "button";
    button.className = "metric-name";
    button.textContent = name;
    const chartKey = withRate ? key + ":rate" : key;
    button.title = "show a chart of " + name + (withRate ? " per second" : "");
    button.addEventListener("click", () => openDetail(chartKey, name + (withRate ? " per second" : ""),
      withRate ? formatPerSecond : formatNumber));
    th.appendChild(button);
    row.appendChild(th);
    const spark = document.createElement("td");
    spark.className = "spark-cell";
    const canvas = document.createElement("canvas");
    canvas.className = "spark";
    canvas.setAttribute("aria-hidden", "true");
    spark.appendChild(canvas);
    const span = document.createElement("span");
    span.className = "spark-range";
    spark.appendChild(span);
    row.appendChild(spark);
    registerChart(canvas, { keys: [chartKey], seconds: SPARK_SECONDS, spark: true });
    for (const cls of withRate ? ["value", "rate"] : ["value"]) {
      const td = document.createElement("td");
      td.className = cls;
      row.appendChild(td);
    }
    const actions = document.createElement("td");
    const pin = document.createElement("button");
    pin.type = "button";
    pin.className = "metric-pin plain";
    pin.textContent = "pin";
    pin.dataset.key = chartKey;
    pin.setAttribute("aria-pressed", String(state.pins.includes(chartKey)));
    pin.setAttribute("aria-label", "pin a chart of " + name + " beside the system charts");
    pin.addEventListener("click", () => togglePin(chartKey));
    actions.appendChild(pin);
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "metric-delete";
    remove.textContent = "\u00d7";
    remove.title = "delete " + name + " and its history";
    remove.setAttribute("aria-label", "delete " + section.slice(0, -1) + " " + name);
    remove.addEventListener("click", () => deleteMetric(section, name, key, row));
    actions.appendChild(remove);
    row.appendChild(actions);
    return row;
  }

  // Min and max of a series over the sparkline's window, shown beside it.
  function windowRange(key, format) {
    const arr = history.series.get(key) || [];
    const cutoff = history.ts.length ? history.ts[history.ts.length - 1] - SPARK_SECONDS : 0;
    let lo = Infinity, hi = -Infinity;
    for (let i = arr.length - 1; i >= 0 && history.ts[i] >= cutoff; i--) {
      if (isNum(arr[i])) { lo = Math.min(lo, arr[i]); hi = Math.max(hi, arr[i]); }
    }
    return lo === Infinity ? "" : format(lo) + " \u2013 " + format(hi);
  }

  // ---- pinned application charts: remembered in this browser, and in the URL -----------

  const PIN_KEY = "sse-dashboard-pins";
  const MAX_PINS = 12;

  function loadPins() {
    const fromUrl = new URLSearchParams(location.search).get("pin");
    let pins = [];
    try {
      pins = fromUrl !== null ? fromUrl.split(",") : JSON.parse(localStorage.getItem(PIN_KEY) || "[]");
    } catch (e) { pins = []; }
    return pins.filter((p) => typeof p === "string" && /^(counters|gauges)\./.test(p)).slice(0, MAX_PINS);
  }

  function savePins() {
    localStorage.setItem(PIN_KEY, JSON.stringify(state.pins));
    const params = new URLSearchParams(location.search);
    if (state.pins.length) params.set("pin", state.pins.join(",")); else params.delete("pin");
    const query = params.toString();
    window.history.replaceState(null, "", location.pathname + (query ? "?" + query : "") + location.hash);
  }

  function togglePin(key) {
    state.pins = state.pins.includes(key) ? state.pins.filter((p) => p !== key) : state.pins.concat([key]).slice(-MAX_PINS);
    savePins();
    renderPins();
  }

  function renderPins() {
    const area = $("pinned");
    const wanted = new Set(state.pins);
    for (const card of [...area.children]) {
      if (!wanted.has(card.dataset.key)) {
        const chart = charts.find((c) => c.canvas === card.querySelector("canvas"));
        if (chart) charts.splice(charts.indexOf(chart), 1);
        card.remove();
      }
    }
    for (const key of state.pins) {
      if (area.querySelector('[data-key="' + CSS.escape(key) + '"]')) continue;
      const rate = key.endsWith(":rate");
      const name = key.replace(/^(counters|gauges)\./, "").replace(/:rate$/, "");
      const title = name + (rate ? " per second" : "");
      const card = document.createElement("article");
      card.className = "card wide pinned-card";
      card.dataset.key = key;
      const h3 = document.createElement("h3");
      h3.textContent = title;
      const unpin = document.createElement("button");
      unpin.type = "button";
      unpin.className = "plain unpin";
      unpin.textContent = "unpin";
      unpin.setAttribute("aria-label", "unpin " + title);
      unpin.addEventListener("click", () => togglePin(key));
      h3.append(" ", unpin);
      const box = document.createElement("div");
      box.className = "chart";
      const canvas = document.createElement("canvas");
      canvas.className = "chart-canvas";
      canvas.setAttribute("role", "img");
      box.appendChild(canvas);
      card.append(h3, box);
      area.appendChild(card);
      const chart = registerChart(canvas, { main: true, keys: [key], format: rate ? formatPerSecond : formatNumber,
        title, labels: { [key]: name } });
      Object.assign(chart, { seconds: state.range.seconds, window: state.range.zoom });
    }
    for (const button of document.querySelectorAll(".metric-pin")) {
      button.setAttribute("aria-pressed", String(state.pins.includes(button.dataset.key)));
    }
    scheduleDraw();
  }

  // ---- sections: their order and which are folded, remembered and in the URL ---------------

  const LAYOUT_KEY = "sse-dashboard-layout";

  function sections() { return [...document.querySelectorAll("main > section[data-section]")]; }

  function loadLayout() {
    const params = new URLSearchParams(location.search);
    let stored = {};
    try { stored = JSON.parse(localStorage.getItem(LAYOUT_KEY) || "{}"); } catch (e) { stored = {}; }
    const list = (name) => (params.has(name) ? params.get(name).split(",").filter(Boolean) :
      Array.isArray(stored[name]) ? stored[name] : []);
    return { order: list("order"), folded: list("folded") };
  }

  function saveLayout() {
    const layout = { order: sections().map((s) => s.dataset.section),
                     folded: sections().filter((s) => s.dataset.folded === "1").map((s) => s.dataset.section) };
    localStorage.setItem(LAYOUT_KEY, JSON.stringify(layout));
    const params = new URLSearchParams(location.search);
    const defaultOrder = state.defaultOrder.join(",");
    if (layout.order.join(",") !== defaultOrder) params.set("order", layout.order.join(",")); else params.delete("order");
    if (layout.folded.length) params.set("folded", layout.folded.join(",")); else params.delete("folded");
    const query = params.toString();
    window.history.replaceState(null, "", location.pathname + (query ? "?" + query : "") + location.hash);
  }

  function fold(section, folded) {
    section.dataset.folded = folded ? "1" : "0";
    const button = section.querySelector(".section-fold");
    button.setAttribute("aria-expanded", String(!folded));
    button.textContent = folded ? "show" : "hide";
    scheduleDraw();
  }

  function setupSections() {
    state.defaultOrder = sections().map((s) => s.dataset.section);
    for (const section of sections()) {
      const name = section.dataset.section;
      const heading = section.querySelector("h2");
      const label = (heading ? heading.textContent : name).trim();
      const tools = document.createElement("div");
      tools.className = "section-tools";
      const make = (text, aria, onClick) => {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "plain";
        b.textContent = text;
        b.setAttribute("aria-label", aria);
        b.addEventListener("click", onClick);
        tools.append(b);
        return b;
      };
      make("\u2191", "move " + label + " up", () => {
        const previous = section.previousElementSibling;
        if (previous && previous.dataset.section) { section.parentNode.insertBefore(section, previous); saveLayout(); }
      });
      make("\u2193", "move " + label + " down", () => {
        const next = section.nextElementSibling;
        if (next && next.dataset.section) { section.parentNode.insertBefore(next, section); saveLayout(); }
      });
      const foldButton = make("hide", "hide or show " + label, () => { fold(section, section.dataset.folded !== "1"); saveLayout(); });
      foldButton.className = "plain section-fold";
      section.prepend(tools);
    }
    const layout = loadLayout();
    const main = document.querySelector("main");
    const byName = new Map(sections().map((s) => [s.dataset.section, s]));
    if (layout.order.length) {  // the named ones in their order, the others after them as they were
      const rest = state.defaultOrder.filter((n) => !layout.order.includes(n));
      for (const name of layout.order.filter((n) => byName.has(n)).concat(rest)) main.append(byName.get(name));
    }
    for (const section of sections()) fold(section, layout.folded.includes(section.dataset.section));
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
  }

  function eventMatches(ev) {
    const level = $("event-level").value;
    if (level && ev.level !== level) return false;
    const q = $("event-search").value.trim().toLowerCase();
    if (!q) return true;
    return [ev.message, ev.source, ev.data == null ? "" : JSON.stringify(ev.data)]
      .some((text) => String(text).toLowerCase().includes(q));
  }

  function renderEvents() {
    if (state.paused) return;
    const shown = [...state.events.values()].sort((a, b) => b.id - a.id).filter(eventMatches).slice(0, SHOWN_EVENTS);
    $("events").replaceChildren(...shown.map(eventItem));
    $("no-events").hidden = state.events.size > 0;
    $("pause-note").textContent = "";
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

  // Alert rules that are firing now (from the snapshot), shown until they resolve.
  function renderFiring(alerts) {
    notifyNewAlerts(alerts);
    if (alerts.length !== state.firing) { state.firing = alerts.length; updateTitle(); updateFavicon(); }
    $("alerts-banner").hidden = alerts.length === 0;
    const badge = $("firing-badge");
    badge.hidden = alerts.length === 0;
    badge.textContent = alerts.length + " firing";
    $("alerts-list").replaceChildren(...alerts.map((a) => {
      const li = document.createElement("li");
      li.className = LEVEL_CLASS[a.level] || "level-warning";
      li.textContent = String(a.level || "").toUpperCase() + " " + String(a.rule || "") + ": " +
        String(a.message || a.metric || "") + " (" + String(a.metric || "") + " = " + formatNumber(a.value) +
        ", " + String(a.op || "") + " " + formatNumber(a.threshold) + ", since " + formatTime(a.since) + ")";
      return li;
    }));
  }

  // Rules whose metric has never had a value (nobody posts it, or it is misspelt): they cannot fire.
  function renderWaiting(waiting) {
    const note = $("alerts-waiting");
    note.hidden = waiting.length === 0;
    note.textContent = waiting.length === 0 ? "" : "Alert rules waiting for data (their metric has no value yet): " +
      waiting.map((w) => String(w.rule || "") + " (" + String(w.metric || "") + ")").join(", ");
  }

  // One row per heartbeat, rebuilt each sample: a handful of jobs, and every cell is text.
  function renderHeartbeats(beats) {
    $("heartbeats-section").hidden = beats.length === 0;
    const rows = beats.map((b) => {
      const row = document.createElement("tr");
      row.dataset.name = String(b.name);
      const status = b.status === "up" && b.firing ? "silent" : String(b.status);
      const cells = [String(b.name), status, isNum(b.age) ? formatDuration(b.age) + " ago" : "never",
        isNum(b.every) ? formatDuration(b.every) : "\u2014", String(b.message || "")];
      cells.forEach((text, i) => {
        const cell = document.createElement(i === 0 ? "th" : "td");
        if (i === 0) cell.scope = "row";
        cell.textContent = text;
        if (i === 1) cell.className = b.firing || status === "down" ? "beat-bad" : status === "up" ? "beat-ok" : "muted";
        row.append(cell);
      });
      return row;
    });
    $("heartbeats").replaceChildren(...rows);
  }

  function renderAlerts() {
    const badge = $("alert-badge");
    badge.hidden = state.unseenAlerts === 0;
    badge.textContent = state.unseenAlerts + (state.unseenAlerts === 1 ? " alert" : " alerts");
    updateTitle();
  }

  // ---- data --------------------------------------------------------------------

  function applySnapshot(snap) {
    if (!snap || !isNum(snap.seq)) return;
    if (snap.events_epoch) state.epoch = snap.events_epoch;
    if (snap.boot_id !== state.bootId) {
      // A new server run: its seq and event ids start again.
      const restarted = state.bootId !== null;
      state.bootId = snap.boot_id;
      state.lastSeq = 0;
      if (restarted) { clearHistory(); reloadEvents(); seedHistory(); }
    }
    if (snap.seq <= state.lastSeq) return; // stale (e.g. a late poll after the stream resumed)
    state.lastSeq = snap.seq;
    if (isNum(snap.interval) && snap.interval > 0) state.intervalMs = snap.interval * 1000;
    pushPoint(snap.ts, addRates(snap.ts, flattenSnapshot(snap)));
    renderSystem(snap.system || {});
    const n = renderTable($("counters"), "counters", snap.counters, true) +
      renderTable($("gauges"), "gauges", snap.gauges, false);
    $("no-metrics").hidden = n > 0;
    renderServer(snap.server);
    renderFiring(Array.isArray(snap.alerts) ? snap.alerts : []);
    renderWaiting(Array.isArray(snap.alerts_waiting) ? snap.alerts_waiting : []);
    renderHeartbeats(Array.isArray(snap.heartbeats) ? snap.heartbeats : []);
    jobs.render(Array.isArray(snap.jobs) ? snap.jobs : [], snap.ts);
    renderRemoteWrite(snap.remote_write, $("remote-write-section"), $("remote-write"));
    $("demo-note").hidden = snap.demo !== true;
    $("fleet-link").hidden = snap.fleet !== "/fleet";  // started with --fleet (#25)
    flashUpdated(snap.ts);
    scheduleDraw();
  }

  function addEvents(events, live) {
    let added = 0;
    for (const ev of events) {
      if (!ev || !isNum(ev.id) || state.events.has(ev.id)) continue;
      state.events.set(ev.id, ev);
      added++;
      if (ev.id > state.lastEventId) state.lastEventId = ev.id;
      if (live && (ev.level === "warning" || ev.level === "error")) state.unseenAlerts++;
    }
    if (state.events.size > KEPT_EVENTS) {
      const keep = [...state.events.keys()].sort((a, b) => b - a).slice(0, KEPT_EVENTS);
      state.events = new Map(keep.map((id) => [id, state.events.get(id)]));
    }
    if (state.paused && added) {
      $("pause-note").textContent = "paused \u2014 new events are waiting";
    }
    renderEvents();
    renderAlerts();
    if (added) scheduleDraw();  // their markers
  }

  async function getJSON(url) {
    const res = await fetch(withShare(url), { cache: "no-store" });
    // 401: the server has a token and this browser has not visited /?token=... yet.
    $("auth-note").hidden = res.status !== 401;
    if (!res.ok) throw new Error(url + ": HTTP " + res.status);
    return res.json();
  }

  async function reloadEvents() {
    try {
      const body = await getJSON("/api/events?limit=" + KEPT_EVENTS);
      state.events = new Map();
      state.lastEventId = 0;
      addEvents(body.events || [], false);
      if (isNum(body.last_id)) state.lastEventId = body.last_id;
      if (body.epoch) state.epoch = body.epoch;
      return true;
    } catch (e) {
      return false;
    }
  }

  // Every frame this tab gets (from its stream, a poll, or the leader tab) goes through here.
  function handleFrame(type, data) {
    if (type === "metrics") applySnapshot(data);
    else if (type === "log") addEvents([data], true);
    else if (type === "resync") reloadEvents();
  }

  // ---- jobs (jobs.js): the Jobs section and a job's runs (#24) ----------------------------

  const jobs = createJobs({ getJSON });

  // ---- transport (transport.js): the stream, polling, and tab sharing --------------------

  const transport = createTransport({
    state, onFrame: handleFrame, setMode, getJSON, keptEvents: KEPT_EVENTS,
    setRole: (role) => { document.documentElement.dataset.streamRole = role; }, // for debugging, and the tests
  });

  // ---- controls --------------------------------------------------------------------

  function applyTheme(theme) {
    document.documentElement.dataset.theme = theme;
    $("theme-toggle").textContent = theme === "dark" ? "Light theme" : "Dark theme";
    $("theme-toggle").setAttribute("aria-pressed", String(theme === "dark"));
    scheduleDraw();
  }

  function setupControls() {
    const stored = localStorage.getItem("sse-dashboard-theme");
    const media = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;
    applyTheme(stored || (media && media.matches ? "dark" : "light"));
    if (media && media.addEventListener) {
      media.addEventListener("change", (e) => {
        if (!localStorage.getItem("sse-dashboard-theme")) applyTheme(e.matches ? "dark" : "light");
      });
    }
    renderNotifyToggle();
    $("notify-toggle").addEventListener("click", toggleNotify);
    watchProcessesPanel();
    $("show-virtual").addEventListener("change", () => {
      for (const row of $("interfaces").rows) row.hidden = false;
      if (state.lastSystem) renderDevices(state.lastSystem);
    });
    $("theme-toggle").addEventListener("click", () => {
      const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
      localStorage.setItem("sse-dashboard-theme", next);
      applyTheme(next);
    });
    $("event-level").addEventListener("change", renderEvents);
    $("event-search").addEventListener("input", renderEvents);
    $("event-pause").addEventListener("click", () => {
      state.paused = !state.paused;
      $("event-pause").textContent = state.paused ? "Resume" : "Pause";
      $("event-pause").setAttribute("aria-pressed", String(state.paused));
      renderEvents();
    });
    $("alert-badge").addEventListener("click", () => {
      state.unseenAlerts = 0;
      renderAlerts();
      $("events-title").scrollIntoView();
    });
    $("detail-close").addEventListener("click", () => $("detail").close());
    for (const b of document.querySelectorAll("[data-range]")) {
      b.addEventListener("click", () => showDetailRange(Number(b.dataset.range)));
    }
    for (const el of document.querySelectorAll("[data-chart]")) {
      el.addEventListener("click", () => openDetail(el.dataset.chart, el.dataset.title,
        FORMATS[el.dataset.format] || formatNumber));
    }
    window.addEventListener("resize", scheduleDraw);
  }

  function setupCharts() {
    registerChart($("chart-cpu"), { main: true,
      keys: () => ["system.cpu_percent"].concat([...history.series.keys()].filter((k) => /^system\.cpu_core_\d+_percent$/.test(k))),
      max: 100, format: formatPercent, tickFormat: percentTick, title: "CPU",
      labels: { "system.cpu_percent": "total" },
    });
    registerChart($("chart-memory"), { main: true, keys: ["system.memory_percent", "system.swap_percent"], max: 100, format: formatPercent,
      tickFormat: percentTick, title: "Memory and swap" });
    registerChart($("chart-net"), { main: true, keys: ["system.net_recv_bytes_per_s", "system.net_sent_bytes_per_s"], format: formatRate,
      unit: "bytes", tickFormat: compactRate, title: "Network",
      labels: { "system.net_recv_bytes_per_s": "received", "system.net_sent_bytes_per_s": "sent" } });
    registerChart($("chart-disk"), { main: true, keys: ["system.disk_read_bytes_per_s", "system.disk_write_bytes_per_s"], format: formatRate,
      unit: "bytes", tickFormat: compactRate, title: "Disk",
      labels: { "system.disk_read_bytes_per_s": "read", "system.disk_write_bytes_per_s": "write" } });
  }

  async function start() {
    updateTitle();
    setupControls();
    setupCharts();
    for (const b of document.querySelectorAll("[data-main-range]")) {
      b.addEventListener("click", () => setMainRange(Number(b.dataset.mainRange), null));
    }
    $("back-to-live").addEventListener("click", () => setMainRange(CHART_SECONDS, null));
    state.pins = loadPins();
    renderPins();
    setupSections();
    await Promise.all([reloadEvents(), seedHistory()]);
    const fromUrl = rangeFromUrl();
    if (fromUrl.seconds !== CHART_SECONDS || fromUrl.zoom) setMainRange(fromUrl.seconds, fromUrl.zoom);
    transport.start();
    setInterval(transport.checkStall, 1000);
    window.addEventListener("pagehide", transport.release);
    window.addEventListener("pageshow", (e) => { if (e.persisted) transport.start(); });
  }

  start();
})();
