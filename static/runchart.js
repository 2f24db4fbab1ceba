// A job's run durations as bars on a canvas of its own (#24): one bar per run, oldest at the left,
// the grace (start_grace: a run longer than this is hung) and the minimum (min_runtime) as dashed
// lines, failed runs in the error colour AND crossed, runs flagged too fast or too often with a
// triangle, a run still going as a hollow bar of its time so far. charts.js draws time series of
// samples; runs are ordinal and sparse, so they get this small chart instead.
// What was drawn is also in data attributes (points, failed, flagged, lines), as charts.js does.
// runPlan() and durationTicks() are pure (tests/js); drawRunChart(canvas, runs, job, now) draws.

import { formatSeconds, isNum } from "./format.js";

const GRACE_IN_SCALE = 3;  // the grace is drawn to scale up to 3x the longest run; beyond, at the top edge
const STEPS = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

// The bars and lines for these run records (any order) of this job; `now` is the server's time.
export function runPlan(runs, job, now) {
  const records = (Array.isArray(runs) ? runs : []).filter((r) => r && ["success", "fail", "start"].includes(r.kind))
    .sort((a, b) => a.n - b.n);
  // Only the newest `running` starts are still on; an older start without an end was superseded.
  const starts = records.filter((r) => r.kind === "start");
  const on = Math.max(0, Math.min(starts.length, Number(job.running) || 0));
  const open = new Set(starts.slice(starts.length - on).map((r) => r.n));
  const bars = records.map((r) => {
    const running = r.kind === "start" && open.has(r.n);
    const value = running ? (isNum(r.start) && isNum(now) ? Math.max(0, now - r.start) : null) : r.duration;
    return { n: r.n, value: isNum(value) ? value : null, failed: r.kind === "fail", running, ended: r.kind !== "start",
             flags: Array.isArray(r.flags) ? r.flags.filter((f) => typeof f === "string") : [] };
  });
  let top = 0;
  for (const bar of bars) if (isNum(bar.value)) top = Math.max(top, bar.value);
  const min = isNum(job.min_runtime) && job.min_runtime > 0 ? job.min_runtime : null;
  const grace = isNum(job.start_grace) && job.start_grace > 0 ? job.start_grace : null;
  if (min !== null) top = Math.max(top, min);
  const graceFits = grace !== null && (top === 0 || grace <= GRACE_IN_SCALE * top);
  if (graceFits) top = Math.max(top, grace);
  const lines = [];
  if (grace !== null) lines.push({ name: "grace", value: grace, above: !graceFits });
  if (min !== null) lines.push({ name: "min", value: min, above: false });
  return { bars, lines, top: top > 0 ? top : 1 };
}

// Value ticks from 0 to at least top on a step a clock has (seconds, minutes, hours).
export function durationTicks(top, count = 4) {
  if (!isNum(top) || top <= 0) return [0, 1];
  const raw = top / Math.max(1, count);
  const step = STEPS.find((s) => s >= raw) || Math.ceil(raw / 86400) * 86400;
  const ticks = [];
  for (let v = 0; ticks.length < 50; v += step) {
    ticks.push(Number(v.toPrecision(12)));
    if (v >= top) break;
  }
  return ticks;
}

export function drawRunChart(canvas, runs, job, now) {
  const plan = runPlan(runs, job, now);
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (!w || !h) return plan;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(h * dpr);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const style = getComputedStyle(document.documentElement);  // colours from CSS, so themes apply
  const color = (name) => style.getPropertyValue(name).trim();
  const m = { left: 56, right: 8, top: 20, bottom: 8 };
  const pw = Math.max(1, w - m.left - m.right), ph = Math.max(1, h - m.top - m.bottom);
  const ticks = durationTicks(plan.top, Math.max(2, Math.floor(ph / 28)));
  const top = ticks[ticks.length - 1];
  const y = (v) => m.top + ph - (Math.min(Math.max(0, v), top) / top) * ph;

  ctx.font = "11px system-ui, sans-serif";
  ctx.lineWidth = 1;
  ctx.strokeStyle = color("--line");
  ctx.fillStyle = color("--muted");
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  const labels = ticks.map(formatSeconds);
  ticks.forEach((v, i) => {
    const py = Math.round(y(v)) + 0.5;
    ctx.beginPath(); ctx.moveTo(m.left, py); ctx.lineTo(w - m.right, py); ctx.stroke();
    ctx.fillText(labels[i], m.left - 6, py);
  });

  const slot = pw / Math.max(plan.bars.length, 1);
  const barW = Math.max(2, Math.min(24, slot * 0.7));
  const base = y(0);
  plan.bars.forEach((bar, i) => {
    const cx = m.left + slot * (i + 0.5), x0 = cx - barW / 2;
    const py = isNum(bar.value) ? y(bar.value) : base;
    const height = Math.max(bar.ended || bar.running ? 1 : 4, base - py);
    if (bar.running || !bar.ended) {  // still going, or a start whose end never came: hollow
      ctx.strokeStyle = color(bar.running ? "--c3" : "--muted");
      ctx.setLineDash(bar.running ? [] : [2, 2]);
      ctx.strokeRect(x0 + 0.5, base - height + 0.5, barW - 1, height - 1);
      ctx.setLineDash([]);
    } else {
      ctx.fillStyle = color(bar.failed ? "--error" : "--c1");
      ctx.fillRect(x0, base - height, barW, height);
    }
    let markY = base - height - 4;
    if (bar.failed) {  // a cross above the bar: failures are told by shape, not colour alone
      const r = Math.min(4, barW / 2);
      ctx.strokeStyle = color("--error");
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.moveTo(cx - r, markY - 2 * r); ctx.lineTo(cx + r, markY);
      ctx.moveTo(cx + r, markY - 2 * r); ctx.lineTo(cx - r, markY);
      ctx.stroke();
      ctx.lineWidth = 1;
      markY -= 2 * r + 3;
    }
    if (bar.flags.length) {  // too fast or too often: a triangle pointing at the bar
      const r = Math.min(4, barW / 2);
      ctx.fillStyle = color("--warning");
      ctx.beginPath();
      ctx.moveTo(cx, markY); ctx.lineTo(cx - r, markY - 2 * r); ctx.lineTo(cx + r, markY - 2 * r);
      ctx.closePath();
      ctx.fill();
    }
  });

  ctx.textAlign = "right";
  ctx.textBaseline = "bottom";
  for (const line of plan.lines) {
    const py = Math.round(line.above ? m.top : y(line.value)) + 0.5;
    ctx.strokeStyle = ctx.fillStyle = color(line.name === "grace" ? "--error" : "--warning");
    ctx.setLineDash([5, 4]);
    ctx.beginPath(); ctx.moveTo(m.left, py); ctx.lineTo(w - m.right, py); ctx.stroke();
    ctx.setLineDash([]);
    const text = (line.name === "grace" ? "grace " : "minimum ") + formatSeconds(line.value) + (line.above ? " \u2191 (above)" : "");
    ctx.fillText(text, w - m.right, py - 2);
  }

  const failed = plan.bars.filter((b) => b.failed).length, flagged = plan.bars.filter((b) => b.flags.length).length;
  Object.assign(canvas.dataset, { points: String(plan.bars.length), failed: String(failed), flagged: String(flagged),
    lines: plan.lines.map((l) => l.name + (l.above ? ":above" : "")).join("|"), yTicks: labels.join("|") });
  const longest = Math.max(0, ...plan.bars.map((b) => b.value || 0));
  canvas.setAttribute("aria-label", "Run durations, oldest first: " + plan.bars.length + " runs, the longest " +
    formatSeconds(longest) + ", " + failed + " failed, " + flagged + " too fast or too often" +
    plan.lines.map((l) => "; " + (l.name === "grace" ? "grace " : "minimum ") + formatSeconds(l.value)).join(""));
  return plan;
}
