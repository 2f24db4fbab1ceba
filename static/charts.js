// Charts: canvas drawing with no library. Axes in each chart's unit (axis.js), min-max bands of
// rolled-up history, event markers and alert spans on the time axis, a hover tip, drag-to-zoom.
// createCharts({history, events, liveSeconds, onMarkClick, onZoom, onReset})
//   -> {charts, registerChart, scheduleDraw, visibleRange, cssVar}

import { formatNumber, formatTime, isNum } from "./format.js";
import { formatTick, niceTicks, timeTicks } from "./axis.js";

export function createCharts({ history, events, liveSeconds, onMarkClick, onZoom, onReset }) {
  const charts = [];       // {canvas, keys, seconds, format, max, spark}
  let drawPending = false;

  // Colours come from CSS (so themes apply), read once per frame: getComputedStyle for
  // every line of 60 sparklines would recalculate styles hundreds of times a frame.
  let frameColors = null;
  function cssVar(name) {
    if (!frameColors) frameColors = { style: getComputedStyle(document.documentElement) };
    if (!(name in frameColors)) frameColors[name] = frameColors.style.getPropertyValue(name).trim();
    return frameColors[name];
  }
  const PALETTE = ["--c1", "--c2", "--c3", "--c4", "--c5", "--c6"];

  function registerChart(canvas, options) {
    const chart = Object.assign({ canvas, seconds: liveSeconds, format: formatNumber, max: null, spark: false }, options);
    charts.push(chart);
    if (!chart.spark) attachHover(chart);
    if (chart.main) attachZoom(chart);
    return chart;
  }

  function chartKeys(chart) {
    return typeof chart.keys === "function" ? chart.keys() : chart.keys;
  }

  function scheduleDraw() {
    if (drawPending) return;
    drawPending = true;
    requestAnimationFrame(() => {
      drawPending = false;
      frameColors = null;
      frameSpans = null;
      for (const chart of charts) if (chart.canvas.isConnected) drawChart(chart);
    });
  }

  // The window grows with the data (at least a minute) up to the chart's span, so a
  // fresh page does not squeeze its first points against the right edge.
  function dataOf(chart) { return chart.source || history; }

  function visibleRange(chart) {
    const data = dataOf(chart);
    const n = data.ts.length;
    if (!n) return null;
    if (chart.window) {  // zoomed: a fixed span, whatever arrives
      const [start, end] = chart.window;
      let first = 0, last = n;
      while (first < n - 1 && data.ts[first] < start) first++;
      while (last > first + 1 && data.ts[last - 1] > end) last--;
      return { first, n: last, start, end, seconds: end - start };
    }
    const end = data.ts[n - 1];
    const seconds = Math.min(chart.seconds, Math.max(chart.spark ? chart.seconds : 60, end - data.ts[0]));
    const start = end - seconds;
    let first = 0;
    while (first < n - 1 && data.ts[first] < start) first++;
    return { first, n, start, end, seconds };
  }

  function drawChart(chart) {
    const canvas = chart.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    if (!w || !h) return;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const range = visibleRange(chart);
    const keys = chartKeys(chart);
    const data = dataOf(chart);
    let points = 0;
    // Full charts get axes: value ticks at the left in the chart's unit, time along the bottom.
    const m = chart.spark ? { left: 0, right: 0, top: 1, bottom: 1 } : { left: 56, right: 6, top: 6, bottom: 18 };
    const pw = Math.max(1, w - m.left - m.right), ph = Math.max(1, h - m.top - m.bottom);
    if (range) {
      let top = chart.max || 0;
      if (!chart.max) {
        for (const key of keys) {
          const band = data.bands && data.bands[key];
          for (const arr of [data.series.get(key) || [], band ? band.max : []]) {
            for (let i = range.first; i < range.n; i++) if (isNum(arr[i]) && arr[i] > top) top = arr[i];
          }
        }
        top = top > 0 ? top * (chart.spark ? 1.1 : 1) : 1;
      }
      const ticks = chart.spark ? [] : niceTicks(0, top, Math.max(2, Math.floor(ph / 28)), chart.unit || "number");
      if (ticks.length) top = ticks[ticks.length - 1];
      chart.top = top;
      const x = (ts) => m.left + ((ts - range.start) / Math.max(1e-9, range.seconds)) * pw;
      const y = (v) => m.top + ph - (Math.max(0, v) / top) * ph;
      if (!chart.spark) {
        drawAxes(chart, ctx, ticks, range, x, y, m, w, h);
        drawAlertSpans(chart, ctx, range, x, m, h);
        drawEventMarks(chart, ctx, range, x, m, h);
      }
      keys.forEach((key, k) => {
        const arr = data.series.get(key);
        if (!arr) return;
        const band = data.bands && data.bands[key];
        if (band) drawBand(ctx, band, data.ts, range, x, y, cssVar(PALETTE[k % PALETTE.length]));
        ctx.strokeStyle = cssVar(chart.colors ? chart.colors[k] : PALETTE[k % PALETTE.length]);
        ctx.lineWidth = chart.spark ? 1.25 : (keys.length > 4 && k > 0 ? 1 : 1.75);
        ctx.beginPath();
        let pen = false;
        for (let i = range.first; i < range.n; i++) {
          const v = arr[i];
          if (!isNum(v)) { pen = false; continue; }
          points++;
          if (pen) ctx.lineTo(x(data.ts[i]), y(v)); else ctx.moveTo(x(data.ts[i]), y(v));
          pen = true;
        }
        ctx.stroke();
      });
    }
    canvas.dataset.points = String(points);
    canvas.dataset.band = range && keys.some((key) => data.bands && data.bands[key]) ? "1" : "0";
    if (!chart.spark) describeChart(chart, data, keys);
    if (chart.hoverIndex != null) drawHover(chart, ctx, w, h, m);
  }

  // Gridlines and labels at the value ticks; time labels under the plot. The labels are also
  // kept in data attributes, so a test (or a person debugging) can read what the axes say.
  function drawAxes(chart, ctx, ticks, range, x, y, m, w, h) {
    ctx.save();
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = cssVar("--muted");
    ctx.strokeStyle = cssVar("--line");
    ctx.lineWidth = 1;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    const yLabels = ticks.map((v) => chart.tickFormat ? chart.tickFormat(v) : chart.format(v));
    ticks.forEach((v, i) => {
      const py = Math.round(y(v)) + 0.5;
      ctx.beginPath(); ctx.moveTo(m.left, py); ctx.lineTo(w - m.right, py); ctx.stroke();
      ctx.fillText(yLabels[i], m.left - 6, py);
    });
    const times = timeTicks(range.start, range.end, Math.max(2, Math.floor((w - m.left) / 90)));
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const xLabels = times.map((t) => formatTick(t, range.seconds));
    times.forEach((t, i) => {
      const px = Math.round(x(t)) + 0.5;
      ctx.beginPath(); ctx.moveTo(px, h - m.bottom); ctx.lineTo(px, h - m.bottom + 3); ctx.stroke();
      ctx.fillText(xLabels[i], px, h - m.bottom + 4);
    });
    ctx.restore();
    chart.canvas.dataset.yTicks = yLabels.join("|");
    chart.canvas.dataset.xTicks = xLabels.join("|");
  }

  // Warning and error events in the window, as ticks on the time axis (hover: the message;
  // click: the event in the list). Kept on the chart for the hover and click handlers.
  function eventsBetween(start, end) {
    return [...events()].filter((ev) => isNum(ev.ts) && ev.ts >= start && ev.ts <= end);
  }

  function drawEventMarks(chart, ctx, range, x, m, h) {
    chart.marks = [];
    for (const ev of eventsBetween(range.start, range.end)) {
      if (ev.level !== "warning" && ev.level !== "error") continue;
      const px = Math.round(x(ev.ts));
      chart.marks.push({ x: px, event: ev });
      ctx.fillStyle = cssVar(ev.level === "error" ? "--error" : "--warning");
      ctx.beginPath();
      ctx.moveTo(px, h - m.bottom - 7); ctx.lineTo(px - 4, h - m.bottom); ctx.lineTo(px + 4, h - m.bottom);
      ctx.closePath();
      ctx.fill();
    }
    chart.canvas.dataset.marks = chart.marks.map((mark) => mark.x).join("|");
  }

  // When an alert fired and until it resolved (from its alert.firing and alert.resolved
  // events), shaded across the chart.
  // Worked out once per frame for every chart: each chart only cuts them to its window.
  let frameSpans = null;

  function allAlertSpans() {
    if (frameSpans) return frameSpans;
    const open = new Map();
    frameSpans = [];
    const sorted = eventsBetween(-Infinity, Infinity).sort((a, b) => a.id - b.id);
    for (const ev of sorted) {
      const data = ev.data || {};
      const rule = String(data.rule || data.heartbeat || "");
      if (ev.type === "alert.firing") open.set(rule, ev.ts);
      else if (ev.type === "alert.resolved" && open.has(rule)) { frameSpans.push([open.get(rule), ev.ts]); open.delete(rule); }
    }
    for (const since of open.values()) frameSpans.push([since, Infinity]);  // still firing
    return frameSpans;
  }

  function alertSpans(start, end) {
    return allAlertSpans().map(([a, b]) => [a, Math.min(b, end)]).filter(([a, b]) => b >= start && a <= end);
  }

  function drawAlertSpans(chart, ctx, range, x, m, h) {
    ctx.save();
    ctx.fillStyle = cssVar("--error");
    ctx.globalAlpha = 0.08;
    const spans = alertSpans(range.start, range.end);
    chart.canvas.dataset.alertSpans = String(spans.length);
    for (const [a, b] of spans) {
      const x0 = x(Math.max(a, range.start)), x1 = x(Math.min(b, range.end));
      ctx.fillRect(x0, m.top, Math.max(2, x1 - x0), h - m.top - m.bottom);
    }
    ctx.restore();
  }

  function markNear(chart, px) {
    let best = null;
    for (const mark of chart.marks || []) {
      if (Math.abs(mark.x - px) <= 5 && (!best || Math.abs(mark.x - px) < Math.abs(best.x - px))) best = mark;
    }
    return best;
  }

  // Drag across a chart to zoom into that span; double-click to go back to live.
  function attachZoom(chart) {
    const canvas = chart.canvas;
    let from = null;
    const tsAt = (e) => {
      const range = visibleRange(chart);
      if (!range) return null;
      const rect = canvas.getBoundingClientRect();
      return range.start + ((e.clientX - rect.left - 56) / Math.max(1, rect.width - 62)) * range.seconds;
    };
    canvas.addEventListener("mousedown", (e) => { from = { ts: tsAt(e), x: e.clientX }; });
    // On the window: the hover tip may be under the pointer when the button comes up.
    window.addEventListener("mouseup", (e) => {
      if (!from || from.ts === null) return;
      const to = tsAt(e);
      const dragged = Math.abs(e.clientX - from.x) > 8;
      const start = Math.min(from.ts, to), end = Math.max(from.ts, to);
      from = null;
      if (dragged && end - start >= 2) onZoom(start, end);
    });
    canvas.addEventListener("dblclick", () => onReset());
  }

  // The chart as text, for screen readers: what each line says now (role="img" with a label).
  function describeChart(chart, data, keys) {
    const n = data.ts.length;
    if (!n) return;
    const now = keys.map((key) => {
      const arr = data.series.get(key) || [];
      return labelFor(chart, key) + " " + chart.format(arr[n - 1]);
    });
    const label = (chart.title || "chart") + ", now: " + now.join(", ");
    if (chart.canvas.getAttribute("aria-label") !== label) chart.canvas.setAttribute("aria-label", label);
  }

  // The min-max band of rolled-up history: one filled polygon per run of known values.
  function drawBand(ctx, band, ts, range, x, y, color) {
    ctx.save();
    ctx.fillStyle = color;
    ctx.globalAlpha = 0.18;
    let run = [];
    const flush = () => {
      if (run.length > 1) {
        ctx.beginPath();
        run.forEach((i, j) => (j ? ctx.lineTo(x(ts[i]), y(band.max[i])) : ctx.moveTo(x(ts[i]), y(band.max[i]))));
        for (let j = run.length - 1; j >= 0; j--) ctx.lineTo(x(ts[run[j]]), y(band.min[run[j]]));
        ctx.closePath();
        ctx.fill();
      }
      run = [];
    };
    for (let i = range.first; i < range.n; i++) {
      if (isNum(band.min[i]) && isNum(band.max[i])) run.push(i); else flush();
    }
    flush();
    ctx.restore();
  }

  function attachHover(chart) {
    const canvas = chart.canvas;
    const tip = document.createElement("div");
    tip.className = "chart-tip";
    tip.hidden = true;
    canvas.parentNode.appendChild(tip);
    chart.tip = tip;
    canvas.addEventListener("mousemove", (e) => {
      const range = visibleRange(chart);
      if (!range) return;
      const rect = canvas.getBoundingClientRect();
      const left = 56, right = 6; // the plot's margins (drawChart)
      const ts = range.start + ((e.clientX - rect.left - left) / Math.max(1, rect.width - left - right)) * range.seconds;
      const data = dataOf(chart);
      let best = range.first;
      for (let i = range.first; i < range.n; i++) if (Math.abs(data.ts[i] - ts) < Math.abs(data.ts[best] - ts)) best = i;
      chart.hoverIndex = best;
      const lines = [formatTime(data.ts[best])];
      chartKeys(chart).forEach((key) => {
        const arr = data.series.get(key) || [];
        lines.push(labelFor(chart, key) + ": " + chart.format(arr[best]));
      });
      const mark = markNear(chart, e.clientX - rect.left);
      canvas.style.cursor = mark ? "pointer" : "";
      if (mark) lines.push(String(mark.event.level).toUpperCase() + " " + formatTime(mark.event.ts) + ": " +
        String(mark.event.message || ""));
      tip.textContent = lines.join("\n");
      tip.hidden = false;
      scheduleDraw();
    });
    canvas.addEventListener("mouseleave", () => { chart.hoverIndex = null; tip.hidden = true; scheduleDraw(); });
    canvas.addEventListener("click", (e) => {
      const mark = markNear(chart, e.clientX - canvas.getBoundingClientRect().left);
      if (mark) { e.stopPropagation(); onMarkClick(mark.event); }
    });
  }

  function labelFor(chart, key) {
    if (chart.labels && chart.labels[key]) return chart.labels[key];
    const core = /^system\.cpu_core_(\d+)_percent$/.exec(key);
    return core ? "core " + core[1] : key.replace(/^system\./, "").replace(/:rate$/, "/s");
  }

  function drawHover(chart, ctx, w, h, m) {
    const range = visibleRange(chart);
    const data = dataOf(chart);
    const i = chart.hoverIndex;
    if (!range || i == null || i >= data.ts.length) return;
    const x = m.left + ((data.ts[i] - range.start) / range.seconds) * (w - m.left - m.right);
    ctx.strokeStyle = cssVar("--muted");
    ctx.lineWidth = 1;
    ctx.beginPath(); ctx.moveTo(Math.round(x) + 0.5, m.top); ctx.lineTo(Math.round(x) + 0.5, h - m.bottom); ctx.stroke();
  }

  return { charts, registerChart, scheduleDraw, visibleRange, cssVar };
}
