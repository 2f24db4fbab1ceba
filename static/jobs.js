// Jobs (#24): the job monitors' section and one job's detail dialog.
// The section: a row per job from each sample's snap.jobs (hidden when there are none), jobs in
// trouble first; each row's name is a button that opens the dialog. The dialog: the job's runs
// (GET /api/jobs/<slug>/runs) as a duration chart (runchart.js) and a list with each run's output,
// and pause/resume and delete. Rows are kept by slug and updated in place, so a focused button
// keeps its focus from one sample to the next.
// Names, messages and output come from whoever pinged: they go in through textContent only.
// createJobs({getJSON}) -> {render(jobs, now)}

import { formatRelative, formatSeconds, formatTime, isNum } from "./format.js";
import { drawRunChart } from "./runchart.js";

const RUNS_SHOWN = 50;
// Classes come from this allowlist, never from the server's words.
const STATE_CLASS = { up: "state-ok", started: "state-on", late: "state-warn", down: "state-bad",
                      new: "state-idle", paused: "state-idle", maintenance: "state-idle" };
const TROUBLE = { down: 1, late: 2, started: 3, up: 4, new: 5, maintenance: 6, paused: 7 };
const CELLS = [["job-state-cell", "state"], ["job-schedule", "schedule"], ["job-last", "last run"],
               ["job-next", "next expected"], ["job-running", "running"], ["job-message", "alert"]];
const KIND_TEXT = { success: "success", fail: "failed", start: "started, no end yet", log: "log" };

// Firing first, then down, late, running ... paused last; by name within each.
export function troubleOrder(a, b) {
  const rank = (j) => (j.firing ? 0 : TROUBLE[j.status] || 4);
  return rank(a) - rank(b) || String(a.name).localeCompare(String(b.name));
}

export function createJobs({ getJSON }) {
  const $ = (id) => document.getElementById(id);
  const dialog = $("job-detail");
  const canvas = $("job-runs-chart");
  const rows = new Map();   // slug -> <tr>
  const shown = { slug: null, job: null, runs: [], seen: null, token: 0, now: null };
  let latest = new Map();   // slug -> job, from the newest sample

  function lastRun(job, now) {
    if (!isNum(job.last_ping)) return "never";
    const outcome = job.last_outcome === "fail" ? "failed" : "success";
    return formatRelative(job.last_ping, now) + " \u00b7 " + outcome +
      (isNum(job.last_exit) ? " (exit " + job.last_exit + ")" : "") +
      (isNum(job.last_duration) ? " \u00b7 took " + formatSeconds(job.last_duration) : "");
  }

  function nextRun(job, now) {
    if (job.paused) return "paused";
    if (isNum(job.maintenance_until) && job.maintenance_until > now) {
      return "maintenance until " + formatTime(job.maintenance_until);
    }
    if (!isNum(job.next_expected)) return "after its first ping";
    return job.next_expected <= now ? "due " + formatRelative(job.next_expected, now) : formatRelative(job.next_expected, now);
  }

  function stateBadge(el, job) {
    el.className = "job-state " + (job.firing ? "state-bad" : STATE_CLASS[job.status] || "state-idle");
    el.textContent = String(job.status) + (job.firing && job.status !== "down" ? " (alert)" : "");
  }

  function makeRow(slug) {
    const row = document.createElement("tr");
    row.dataset.slug = slug;
    const th = document.createElement("th");
    th.scope = "row";
    const open = document.createElement("button");
    open.type = "button";
    open.className = "link job-open";
    open.addEventListener("click", () => openJob(slug));
    const small = document.createElement("small");
    small.className = "muted job-slug";
    th.append(open, small);
    row.append(th);
    for (const [cls, label] of CELLS) {
      const td = document.createElement("td");
      td.className = cls;
      td.dataset.label = label;  // the narrow layout names each cell (style.css)
      row.append(td);
    }
    const badge = document.createElement("span");
    row.querySelector(".job-state-cell").append(badge);
    return row;
  }

  function fillRow(row, job, now) {
    const set = (selector, text) => { const el = row.querySelector(selector); if (el.textContent !== text) el.textContent = text; };
    set(".job-open", String(job.name));
    set(".job-slug", job.slug !== job.name ? " " + String(job.slug) : "");
    row.querySelector(".job-open").setAttribute("aria-label", "runs of " + String(job.name));
    stateBadge(row.querySelector(".job-state-cell span"), job);
    set(".job-schedule", String(job.schedule || ""));
    set(".job-last", lastRun(job, now));
    set(".job-next", nextRun(job, now));
    set(".job-running", isNum(job.running) && job.running ? String(job.running) : "\u2014");
    set(".job-message", job.firing ? String(job.message || "") : "");
  }

  function render(jobs, now) {
    jobs = jobs.filter((j) => j && typeof j.slug === "string");
    latest = new Map(jobs.map((j) => [j.slug, j]));
    $("jobs-section").hidden = jobs.length === 0;
    const body = $("jobs");
    jobs.sort(troubleOrder).forEach((job, i) => {
      let row = rows.get(job.slug);
      if (!row) { row = makeRow(job.slug); rows.set(job.slug, row); }
      fillRow(row, job, now);
      if (body.rows[i] !== row) body.insertBefore(row, body.rows[i] || null);  // moved only when the order changes
    });
    for (const [slug, row] of rows) if (!latest.has(slug)) { row.remove(); rows.delete(slug); }
    shown.now = now;
    if (dialog.open && shown.slug !== null) showJob(latest.get(shown.slug) || null);
  }

  // ---- the detail dialog --------------------------------------------------------------------

  function openJob(slug) {
    shown.slug = slug;
    shown.runs = [];
    shown.seen = null;
    $("job-detail-title").textContent = String((latest.get(slug) || {}).name || slug);
    $("job-runs").replaceChildren();
    $("job-action-note").textContent = "";
    if (dialog.showModal) { if (!dialog.open) dialog.showModal(); } else dialog.setAttribute("open", "");
    showJob(latest.get(slug) || null);
  }

  // The job's state in the dialog; its runs again whenever a ping or an action changed it.
  function showJob(job) {
    shown.job = job;
    const gone = job === null;
    $("job-pause").disabled = $("job-delete").disabled = gone;
    if (gone) { $("job-detail-state").textContent = "This job was deleted."; return; }
    const state = document.createElement("span");
    stateBadge(state, job);
    const parts = [String(job.schedule || ""), "last run " + lastRun(job, shown.now), "next " + nextRun(job, shown.now)];
    $("job-detail-state").replaceChildren(state, " " + parts.join(" \u00b7 "), job.firing ? " \u2014 " + String(job.message || "") : "");
    $("job-pause").textContent = job.paused ? "Resume" : "Pause";
    const seen = [job.last_ping, job.running, job.status, job.paused].join("|");
    if (seen !== shown.seen) { shown.seen = seen; loadRuns(job.slug); } else drawRunChart(canvas, shown.runs, job, shown.now);
  }

  async function loadRuns(slug) {
    const token = ++shown.token;
    try {
      const body = await getJSON("/api/jobs/" + encodeURIComponent(slug) + "/runs?limit=" + RUNS_SHOWN);
      if (token !== shown.token || shown.slug !== slug) return;  // another job, or a newer load, won
      shown.runs = Array.isArray(body.runs) ? body.runs : [];
      $("job-runs-note").textContent = shown.runs.length ? "" : "No runs yet.";
    } catch (e) {
      if (token !== shown.token) return;
      $("job-runs-note").textContent = "Could not load the runs.";
    }
    $("job-runs").replaceChildren(...shown.runs.map(runItem));
    if (shown.job) drawRunChart(canvas, shown.runs, shown.job, shown.now);
  }

  function runItem(run) {
    const li = document.createElement("li");
    li.className = "job-run" + (run.kind === "fail" ? " run-fail" : "");
    li.dataset.n = String(run.n);
    const head = document.createElement("div");
    head.className = "job-run-head";
    const flags = Array.isArray(run.flags) ? run.flags.map(String) : [];
    const cells = [
      ["time", "run-time", formatTime(isNum(run.end) ? run.end : isNum(run.start) ? run.start : run.ts)],
      ["span", "run-kind", KIND_TEXT[run.kind] || String(run.kind)],
      ["span", "run-exit", isNum(run.exit) ? "exit " + run.exit : ""],
      ["span", "run-duration", isNum(run.duration) ? "took " + formatSeconds(run.duration) : ""],
      ["span", "run-flags", flags.length ? "\u25bc " + flags.join(", ") : ""],
    ];
    for (const [tag, cls, text] of cells) {
      const el = document.createElement(tag);
      el.className = cls;
      el.textContent = text;
      head.append(el);
    }
    li.append(head);
    if (typeof run.output === "string" && run.output !== "") {
      const pre = document.createElement("pre");
      pre.className = "run-output";
      pre.textContent = run.output;
      li.append(pre);
    }
    return li;
  }

  // POST and DELETE as the page's other writes do: same-origin fetch (the token cookie goes
  // with it); the server's {"error"} is what the person reads when it refuses.
  async function send(method, path) {
    const res = await fetch(path, { method, cache: "no-store", credentials: "same-origin" });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(String(body.error || "HTTP " + res.status));
    return body;
  }

  async function act(what) {
    const job = shown.job;
    if (!job) return;
    const path = "/api/jobs/" + encodeURIComponent(job.slug);
    const note = $("job-action-note");
    try {
      if (what === "delete") {
        if (!window.confirm("Delete the job \u201c" + String(job.name) + "\u201d and all its runs?")) return;
        await send("DELETE", path);
        shown.slug = null;
        dialog.close();
        const row = rows.get(job.slug);
        if (row) { row.remove(); rows.delete(job.slug); }
        return;
      }
      const changed = await send("POST", path + "/" + (job.paused ? "resume" : "pause"));
      note.textContent = changed.paused ? "Paused: no runs are expected until it is resumed." : "Resumed.";
      latest.set(job.slug, changed);
      showJob(changed);
    } catch (e) {
      note.textContent = "Could not " + (what === "delete" ? "delete" : job.paused ? "resume" : "pause") + " the job: " + e.message;
    }
  }

  $("job-pause").addEventListener("click", () => act("pause"));
  $("job-delete").addEventListener("click", () => act("delete"));
  $("job-detail-close").addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => { shown.slug = null; shown.job = null; shown.token++; });
  window.addEventListener("resize", () => { if (dialog.open && shown.job) drawRunChart(canvas, shown.runs, shown.job, shown.now); });

  return { render };
}
