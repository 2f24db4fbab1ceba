// A status page (/status/<slug>, #26). The server's HTML is complete without this script; here the
// page is kept live: each view the server builds (once a sample, for every viewer) arrives over
// /status/<slug>/stream as an event named "status:<slug>", and the parts are rebuilt from it with
// createElement and textContent only (labels and notes are an admin's text, never markup).
"use strict";

(function () {
  const STATE_TEXT = { up: "Operational", down: "Down", late: "Late", maintenance: "Maintenance", unknown: "No data" };
  const OVERALL_TEXT = { up: "All systems operational", down: "Some systems are down", late: "Some systems are late",
                         unknown: "No data yet" };
  const WINDOWS = [["24h", "24 hours"], ["7d", "7 days"], ["30d", "30 days"], ["90d", "90 days"]];

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function pad(n) { return String(n).padStart(2, "0"); }
  function when(ts) {
    if (ts === null || ts === undefined) return "";
    const d = new Date(ts * 1000);
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " +
      pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + " UTC";
  }
  function percent(f) {
    if (f === null || f === undefined) return "no data";
    return f >= 1 ? "100%" : (100 * f).toFixed(2) + "%";
  }
  function barClass(f) {
    if (f === null || f === undefined) return "none";
    return f >= 1 ? "up" : f >= 0.95 ? "partial" : "down";
  }
  function known(state, table) { return Object.prototype.hasOwnProperty.call(table, state) ? state : "unknown"; }

  function stateSpan(state) {
    state = known(state, STATE_TEXT);
    return el("span", "state state-" + state, STATE_TEXT[state]);
  }

  function bars(view, fractions) {
    const list = el("ol", "bars");
    const first = Date.parse(view.first_day + "T00:00:00Z");
    list.setAttribute("aria-label", "daily uptime, " + view.first_day + " to today");
    fractions.forEach(function (f, i) {
      const day = new Date(first + i * 86400000).toISOString().slice(0, 10);
      const bar = el("li", "bar bar-" + barClass(f));
      bar.title = day + ": " + percent(f);
      list.appendChild(bar);
    });
    return list;
  }

  function durations(points) {
    const list = el("ol", "durations");
    list.setAttribute("aria-label", "run durations, newest last");
    const longest = Math.max.apply(null, points.map(function (p) { return p.duration; })) || 1;
    points.forEach(function (p) {
      const h = Math.max(1, Math.round(10 * p.duration / longest));
      const run = el("li", "run run-" + (p.ok ? "ok" : "fail") + " h" + h);
      run.title = when(p.ts) + ": " + p.duration.toFixed(1) + " s";
      list.appendChild(run);
    });
    return list;
  }

  function component(c, view) {
    const item = el("li", "component");
    const row = el("div", "row");
    row.appendChild(el("span", "label", c.label));
    if (c.kind === "metric") row.appendChild(el("span", "value", c.value === null || c.value === undefined ? "" : String(Number(c.value.toPrecision(6)))));
    row.appendChild(stateSpan(c.state));
    item.appendChild(row);
    const uptime = el("dl", "uptime");
    WINDOWS.forEach(function (w) {
      const pair = el("div");
      pair.appendChild(el("dt", "", w[1]));
      pair.appendChild(el("dd", "", percent(c.uptime[w[0]])));
      uptime.appendChild(pair);
    });
    item.appendChild(uptime);
    item.appendChild(bars(view, c.bars));
    if (c.durations && c.durations.length) item.appendChild(durations(c.durations));
    return item;
  }

  function incident(i) {
    const card = el("article", "incident");
    card.id = "incident-" + Number(i.id);
    card.appendChild(el("h3", "", i.title));
    card.appendChild(el("p", "incident-status", i.resolved !== null ? "resolved " + when(i.resolved) : "ongoing"));
    const steps = el("ol", "timeline");
    i.updates.forEach(function (u) {
      const step = el("li", "update update-" + known(u.kind, { started: 1, resolved: 1, note: 1 }));
      const time = el("time", "", when(u.ts));
      time.dateTime = new Date(u.ts * 1000).toISOString();
      step.appendChild(time);
      step.appendChild(document.createTextNode(" " + u.text));
      steps.appendChild(step);
    });
    card.appendChild(steps);
    return card;
  }

  function render(view) {
    const overall = known(view.state, OVERALL_TEXT);
    const head = document.getElementById("overall");
    head.className = "overall overall-" + overall;
    head.textContent = OVERALL_TEXT[overall];
    const updated = document.getElementById("updated");
    updated.textContent = when(view.updated);
    updated.dateTime = new Date(view.updated * 1000).toISOString();
    document.getElementById("components").replaceChildren.apply(
      document.getElementById("components"), view.components.map(function (c) { return component(c, view); }));
    const incidents = document.getElementById("incidents");
    incidents.replaceChildren.apply(incidents, view.incidents.length ? view.incidents.map(incident)
      : [el("p", "none", "No incidents.")]);
    const notices = document.getElementById("notices");
    notices.replaceChildren.apply(notices, view.maintenance.map(function (n) {
      const item = el("li", "notice");
      item.appendChild(el("strong", "", when(n.start) + " to " + when(n.end)));
      item.appendChild(document.createTextNode(" " + n.text));
      return item;
    }));
    document.getElementById("maintenance").hidden = view.maintenance.length === 0;
  }

  function connect() {
    const slug = document.body.dataset.slug;
    const live = document.getElementById("live");
    if (!slug || typeof EventSource === "undefined") return;
    const source = new EventSource("/status/" + encodeURIComponent(slug) + "/stream");
    source.addEventListener("status:" + slug, function (e) {
      render(JSON.parse(e.data));
    });
    source.onopen = function () { live.textContent = "(live)"; };
    source.onerror = function () { live.textContent = "(reconnecting...)"; };
    window.addEventListener("pagehide", function () { source.close(); });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", connect);
  else connect();
})();
