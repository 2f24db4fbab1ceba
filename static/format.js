// Formatting: raw units in, text out. Pure functions (unit-tested with node --test).

export function isNum(v) { return typeof v === "number" && isFinite(v); }

const DASH = "\u2014";

export function formatBytes(v) {
  if (!isNum(v)) return DASH;
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? v.toFixed(0) : v.toFixed(1)) + " " + units[i];
}

// For axis labels: whole numbers where they are whole (256 MiB, 1 GiB), one decimal otherwise.
export function formatBytesCompact(v) {
  if (!isNum(v)) return DASH;
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (Number.isInteger(v) ? String(v) : v.toFixed(1)) + " " + units[i];
}

export function formatRate(v) { return isNum(v) ? formatBytes(v) + "/s" : DASH; }

export function formatPercent(v) { return isNum(v) ? v.toFixed(1) + " %" : DASH; }

export function formatNumber(v) {
  if (!isNum(v)) return DASH;
  return v.toLocaleString("en-US", { maximumFractionDigits: Number.isInteger(v) ? 0 : 3 });
}

export function formatPerSecond(v) { return isNum(v) ? formatNumber(Math.round(v * 100) / 100) + "/s" : DASH; }

export function formatDuration(s) {
  if (!isNum(s)) return DASH;
  s = Math.floor(s);
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  if (d) return d + "d " + h + "h";
  if (h) return h + "h " + m + "m";
  return m + "m " + (s % 60) + "s";
}

export function formatTime(ts) { return isNum(ts) ? new Date(ts * 1000).toLocaleTimeString() : DASH; }

// A run's length: tenths under ten seconds (jobs often take a second or two), then as formatDuration.
export function formatSeconds(s) {
  if (!isNum(s)) return DASH;
  if (s < 10) return s.toFixed(1) + " s";
  if (s < 60) return Math.round(s) + " s";
  return formatDuration(s);
}

// A moment relative to now (unix seconds, both from the server's clock): "3m 2s ago", "in 1h 0m".
export function formatRelative(ts, now) {
  if (!isNum(ts) || !isNum(now)) return DASH;
  const d = ts - now;
  if (Math.abs(d) < 1) return d > 0 ? "in a moment" : "just now";
  return d > 0 ? "in " + formatDuration(d) : formatDuration(-d) + " ago";
}
