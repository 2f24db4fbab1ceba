// Share links (#26): the page opened at /s/<id> is read-only. The server does the real work: it
// answers a call carrying ?share=<id> with only what the link shows, and refuses every write.
// Here: carry the id on every read (withShare), keep the link's tabs apart from the owner's (one
// BroadcastChannel and stream lock per link: frames cut for one link must not feed another tab),
// show only the link's sections, hide the controls that write, and the kiosk view (no controls,
// large type, one section at a time) for a link made with kiosk or opened with ?kiosk=1.

const match = location.pathname.match(/^\/s\/([^/]+)$/);
export const shareId = match ? decodeURIComponent(match[1]) : null;
// A suffix for the tab-sharing names: a link's tabs share one stream, never with other tabs.
export const shareScope = shareId ? ":share:" + shareId.slice(-16) : "";

const KIOSK_EVERY_S = 15;      // how long the kiosk view shows each section
// The page's sections (data-section) by the link section that shows them.
const PAGE_SECTIONS = { system: ["system"], metrics: ["app"], processes: ["processes"], heartbeats: ["heartbeats"],
  jobs: ["jobs"], events: ["events"] };

// A URL of ours with the link's id added (unchanged outside a share link).
export function withShare(url) {
  if (!shareId) return url;
  return url + (url.includes("?") ? "&" : "?") + "share=" + encodeURIComponent(shareId);
}

function showSections(sections) {
  const shown = new Set(sections.flatMap((s) => PAGE_SECTIONS[s] || []));
  for (const section of document.querySelectorAll("main > section[data-section]")) {
    section.classList.toggle("share-shown", shown.has(section.dataset.section));
  }
  if (!sections.includes("alerts")) document.documentElement.classList.add("share-no-alerts");
}

// Kiosk: the shown sections one at a time, each for `every` seconds, in page order.
function cycle(everyS) {
  let index = -1;
  const step = () => {
    const sections = [...document.querySelectorAll("main > section.share-shown")]
      .filter((s) => !s.hidden || s.classList.contains("kiosk-current"));
    if (!sections.length) return;
    const current = sections.findIndex((s) => s.classList.contains("kiosk-current"));
    index = (Math.max(current, index) + 1) % sections.length;
    for (const section of sections) section.classList.toggle("kiosk-current", section === sections[index]);
  };
  step();
  setInterval(step, everyS * 1000);
}

async function start() {
  const root = document.documentElement;
  root.classList.add("shared");
  const params = new URLSearchParams(location.search);
  let link;
  try {
    const res = await fetch(withShare("/api/share"), { cache: "no-store" });
    if (!res.ok) throw new Error("HTTP " + res.status);
    link = await res.json();
  } catch (err) {
    link = { sections: [], kiosk: false };  // revoked or expired: the page shows nothing
  }
  showSections(link.sections || []);
  if (link.kiosk || params.get("kiosk") === "1") {
    root.classList.add("kiosk");
    const every = Number(params.get("every"));
    cycle(Number.isFinite(every) && every >= 1 ? every : KIOSK_EVERY_S);
  }
}

if (shareId) start();
