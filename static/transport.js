// Transport: how frames reach the page. One EventSource per browser (a Web Lock picks the tab
// that holds it; the others follow over a BroadcastChannel), polling every 2 s as the fallback,
// a stall check for streams that are open but silent (buffering proxies, antivirus).
// createTransport({state, onFrame, setMode, getJSON, keptEvents, setRole}) -> {start, checkStall, release}

import { shareScope, withShare } from "./share.js";

const STREAM_URL = "/api/metrics/stream";
const POLL_MS = 2000;          // fallback polling period
const RECONNECT_MS = 5000;     // our own reconnect after the browser gave up (CLOSED)
const FAILURES_BEFORE_POLL = 3;
const STALL_INTERVALS = 3;     // an open stream silent this many intervals has failed
const LOCK_NAME = "sse-dashboard-stream" + shareScope;  // a share link's tabs share a stream of their own

export function createTransport({ state, onFrame, setMode: showMode, getJSON, keptEvents, setRole }) {
  const channel = "BroadcastChannel" in window ? new BroadcastChannel("sse-dashboard" + shareScope) : null;

  // The page shows the mode; the tab holding the stream tells the others too.
  function setMode(mode) {
    const changed = state.mode !== mode;
    showMode(mode);
    if (changed && state.leader && channel) channel.postMessage({ type: "mode", mode });
  }

  // A frame for the page; the tab holding the stream passes it on to the others.
  function deliver(type, data, fromLeader) {
    onFrame(type, data);
    if (!fromLeader && channel && state.leader) channel.postMessage({ type, data });
  }

  function connect() {
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = null;
    if (!window.EventSource) { startPolling(); return; }
    closeStream();
    // names=log: typed events (record.created) come as "log" too, so one listener sees them all.
    const params = new URLSearchParams({ lastEventId: String(state.lastEventId), names: "log" });
    if (state.epoch) params.set("epoch", state.epoch);
    const source = new EventSource(withShare(STREAM_URL + "?" + params));
    state.source = source;
    source.onopen = () => {
      state.failures = 0;
      state.lastFrameAt = Date.now();
      stopPolling();
      setMode("live");
    };
    for (const type of ["metrics", "log", "resync"]) {
      source.addEventListener(type, (e) => { frameArrived(); deliver(type, JSON.parse(e.data), false); });
    }
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
    const limit = Math.max(3000, STALL_INTERVALS * state.intervalMs);
    const silent = Date.now() - state.lastFrameAt > limit;
    if (!state.leader) {
      // The leader tab went quiet (frozen or gone without releasing): say so.
      if (silent && state.mode === "live") setMode("disconnected");
      return;
    }
    // A stream that is open but silent (a buffering proxy or antivirus) has failed.
    if (state.mode === "live" && state.source && silent) {
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
        getJSON("/api/events?since=" + state.lastEventId + "&limit=" + keptEvents),
      ]);
      if (state.pollTimer === null) return; // the stream came back meanwhile
      deliver("metrics", snap, false);
      if (!evs.epoch || evs.epoch === state.epoch) {
        for (const ev of evs.events || []) deliver("log", ev, false);
      }
      state.lastFrameAt = Date.now();
      setMode("polling");
      // Keep trying the stream in the background; it wins as soon as it opens.
      if (window.EventSource && (!state.source || state.source.readyState === EventSource.CLOSED)) scheduleReconnect();
    } catch (e) {
      if (state.pollTimer !== null) setMode("disconnected");
    }
  }

  function becomeLeader() {
    state.leader = true;
    setRole("leader");
    state.failures = 0;
    connect();
  }

  function stopTransport() {
    closeStream();
    stopPolling();
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = null;
  }

  // Browsers allow 6 HTTP/1.1 connections per host, so a 7th tab with its own
  // stream would hang (mercure#254). One tab holds a Web Lock and the stream; the
  // others follow over a BroadcastChannel, and the lock passes on when it closes.
  function startTransport() {
    if (!channel || !navigator.locks || !window.EventSource) { becomeLeader(); return; }
    state.leader = false;
    setRole("follower");
    channel.onmessage = (e) => {
      const msg = e.data || {};
      if (state.leader) {
        // A new tab asks how things stand; it gets the rest with the next frame.
        if (msg.type === "hello") channel.postMessage({ type: "mode", mode: state.mode });
        return;
      }
      state.lastFrameAt = Date.now();
      if (msg.type === "hello") return;
      if (msg.type === "mode") { setMode(msg.mode); return; }
      if (state.mode !== "live" && state.mode !== "polling") setMode("live");
      deliver(msg.type, msg.data, true);
    };
    navigator.locks.request(LOCK_NAME, () => new Promise((release) => {
      state.releaseLock = release;
      becomeLeader();
    }));
    state.lastFrameAt = Date.now();
    channel.postMessage({ type: "hello" });
  }

  function releaseLeadership() {
    stopTransport();
    if (state.releaseLock) { state.releaseLock(); state.releaseLock = null; }
  }

  return { start: startTransport, checkStall, release: releaseLeadership };
}
