// Chart axes: where the ticks go and what they say. Pure functions (unit-tested with node --test).

import { isNum } from "./format.js";

const KIB = 1024;

// Ticks from 0 (or min) to at least max at a "nice" step: 1, 2 or 5 times a power of ten, or
// for bytes a power of 1024 times 1, 2, 4 or 8 ... so labels read 0, 256 MiB, 512 MiB.
export function niceTicks(min, max, count = 4, unit = "number") {
  if (!isNum(min) || !isNum(max) || max <= min) return [min || 0, (min || 0) + 1];
  const raw = (max - min) / Math.max(1, count);
  let step;
  if (unit === "bytes" && raw >= 1) {
    const power = Math.pow(KIB, Math.floor(Math.log(raw) / Math.log(KIB)));
    step = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024].map((m) => m * power).find((s) => s >= raw);
  } else {
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw * 0.999);
  }
  const first = Math.floor(min / step) * step;
  const ticks = [];
  for (let v = first; v < max + step * 0.999 && ticks.length < 50; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

// Time ticks between start and end (unix seconds) on round wall-clock steps.
const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

export function timeTicks(start, end, count = 5, offsetMinutes = new Date().getTimezoneOffset()) {
  if (!isNum(start) || !isNum(end) || end <= start) return [];
  const raw = (end - start) / Math.max(1, count);
  const step = TIME_STEPS.find((s) => s >= raw) || Math.ceil(raw / 86400) * 86400;
  const shift = -offsetMinutes * 60; // round in local time, so days start at local midnight
  const ticks = [];
  for (let t = Math.ceil((start + shift) / step) * step - shift; t <= end && ticks.length < 50; t += step) ticks.push(t);
  return ticks;
}

// A tick label: time of day for spans under a day, the date and hour beyond.
export function formatTick(ts, spanSeconds) {
  const d = new Date(ts * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  if (spanSeconds > 2 * 86400) return (d.getMonth() + 1) + "/" + d.getDate() + " " + pad(d.getHours()) + "h";
  if (spanSeconds > 600) return pad(d.getHours()) + ":" + pad(d.getMinutes());
  return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
}
