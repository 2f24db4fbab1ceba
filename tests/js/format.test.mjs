// node --test tests/js: the page's pure modules, in node (no browser).
import { test } from "node:test";
import assert from "node:assert/strict";
import { formatBytes, formatBytesCompact, formatDuration, formatNumber, formatPercent, formatRate, formatRelative, formatSeconds,
  isNum } from "../../static/format.js";
import { formatTick, niceTicks, timeTicks } from "../../static/axis.js";

test("numbers are numbers only when finite", () => {
  assert.equal(isNum(1.5), true);
  for (const v of [NaN, Infinity, "1", null, undefined]) assert.equal(isNum(v), false);
});

test("bytes, rates and percent read as people write them", () => {
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(1536), "1.5 KiB");
  assert.equal(formatBytes(5 * 1024 ** 3), "5.0 GiB");
  assert.equal(formatRate(2048), "2.0 KiB/s");
  assert.equal(formatPercent(12.345), "12.3 %");
  assert.equal(formatNumber(1234567), "1,234,567");
  assert.equal(formatBytes(null), "\u2014");
  assert.equal(formatBytesCompact(256 * 1024 ** 2), "256 MiB");
  assert.equal(formatBytesCompact(1.5 * 1024), "1.5 KiB");
});

test("durations", () => {
  assert.equal(formatDuration(59), "0m 59s");
  assert.equal(formatDuration(3 * 3600 + 61), "3h 1m");
  assert.equal(formatDuration(2 * 86400 + 3600), "2d 1h");
});

test("a run's length keeps tenths under ten seconds", () => {
  assert.equal(formatSeconds(0.04), "0.0 s");
  assert.equal(formatSeconds(2.25), "2.3 s");
  assert.equal(formatSeconds(42.4), "42 s");
  assert.equal(formatSeconds(65), "1m 5s");
  assert.equal(formatSeconds(null), "\u2014");
});

test("moments relative to now", () => {
  assert.equal(formatRelative(100, 100.5), "just now");
  assert.equal(formatRelative(100.5, 100), "in a moment");
  assert.equal(formatRelative(1000, 1000 + 182), "3m 2s ago");
  assert.equal(formatRelative(1000 + 3600, 1000), "in 1h 0m");
  assert.equal(formatRelative(null, 1000), "\u2014");
});

test("ticks cover the range at a nice step", () => {
  assert.deepEqual(niceTicks(0, 100, 4), [0, 25, 50, 75, 100]);
  assert.deepEqual(niceTicks(0, 7.3, 4), [0, 2, 4, 6, 8]);
  assert.deepEqual(niceTicks(0, 0.9, 3), [0, 0.5, 1]);
  const bytes = niceTicks(0, 3 * 1024 ** 3, 4, "bytes");
  assert.deepEqual(bytes, [0, 1024 ** 3, 2 * 1024 ** 3, 3 * 1024 ** 3]);
  assert.deepEqual(niceTicks(5, 5), [5, 6]);  // a flat line still gets an axis
});

test("time ticks fall on round wall-clock steps in the range", () => {
  const start = Date.UTC(2026, 10, 30, 12, 0, 7) / 1000;
  const ticks = timeTicks(start, start + 300, 5, 0);
  assert.deepEqual(ticks.map((t) => t % 60), [0, 0, 0, 0, 0]);
  assert.ok(ticks.every((t) => t >= start && t <= start + 300));
  assert.deepEqual(timeTicks(start, start - 1), []);
  const days = timeTicks(start, start + 7 * 86400, 7, 0);
  assert.ok(days.every((t) => t % 86400 === 0) && days.length === 7);
});

test("tick labels fit the span", () => {
  const ts = new Date(2026, 10, 30, 9, 5, 3).getTime() / 1000;
  assert.equal(formatTick(ts, 300), "09:05:03");
  assert.equal(formatTick(ts, 3600), "09:05");
  assert.equal(formatTick(ts, 7 * 86400), "11/30 09h");
});
