// Remote write (#25): the receivers' state, from each sample's snap.remote_write.
// One row per receiver: its URL (scheme, host and path only: the server never sends more),
// samples sent, queued and dropped, the last error and how long the oldest unsent tick has
// waited. The section is hidden when the dashboard pushes nowhere.
// The last error is the receiver's own words: it goes in through textContent only.
// renderRemoteWrite(states, section, tbody)

import { formatDuration, formatNumber, isNum } from "./format.js";

const LAG_WARN_S = 10;  // a lag past this many seconds is shown as a problem

function cell(tag, text, className) {
  const el = document.createElement(tag);
  el.textContent = text;
  if (className) el.className = className;
  return el;
}

export function renderRemoteWrite(states, section, tbody) {
  const list = Array.isArray(states) ? states.filter((s) => s && typeof s === "object") : [];
  section.hidden = list.length === 0;
  tbody.replaceChildren(...list.map((s) => {
    const row = document.createElement("tr");
    const url = cell("th", String(s.url || ""), "rw-url");
    url.scope = "row";
    const lag = isNum(s.lag_s) ? s.lag_s : 0;
    row.append(url,
      cell("td", formatNumber(s.sent), "rw-sent"),
      cell("td", formatNumber(s.queued), "rw-queued"),
      cell("td", formatNumber(s.dropped), "rw-dropped" + (isNum(s.dropped) && s.dropped > 0 ? " beat-bad" : "")),
      cell("td", s.last_error ? String(s.last_error) : "none", "rw-error" + (s.last_error ? "" : " muted")),
      cell("td", lag < 60 ? lag.toFixed(1) + " s" : formatDuration(lag), "rw-lag" + (lag > LAG_WARN_S ? " beat-bad" : "")));
    return row;
  }));
}
