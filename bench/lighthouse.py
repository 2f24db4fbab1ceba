"""Lighthouse accessibility and best-practices scores of the page, light and dark theme.

    npm install --prefix bench/js      # lighthouse, pinned by bench/js/package-lock.json
    python bench/lighthouse.py         # writes bench/RESULTS-lighthouse.md

The dashboard runs as users run it (--demo, so every part of the page has something in it);
Lighthouse drives Debian's chromium (CHROME_PATH), once as it comes and once with
--force-dark-mode (prefers-color-scheme: dark, which the page follows).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIGHTHOUSE = ROOT / "bench" / "js" / "node_modules" / ".bin" / "lighthouse"
FLAGS = "--headless=new --no-sandbox --disable-gpu --disable-background-networking --disable-component-update " \
        "--disable-sync --no-first-run"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    if not LIGHTHOUSE.exists():
        sys.exit("lighthouse is not installed: npm install --prefix bench/js")
    port = free_port()
    server = subprocess.Popen([sys.executable, str(ROOT / "sse_server.py"), "--port", str(port), "--demo"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = []
    try:
        for _ in range(50):
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/api/health" % port, timeout=1).read()
                break
            except OSError:
                time.sleep(0.2)
        time.sleep(10)  # the demo fills the charts and the event list
        for theme, extra in (("light", ""), ("dark", " --force-dark-mode")):
            out = Path(tempfile.mkdtemp()) / "report.json"
            subprocess.run([str(LIGHTHOUSE), "http://127.0.0.1:%d/" % port, "--quiet", "--output=json",
                            "--output-path=%s" % out, "--only-categories=accessibility,best-practices",
                            "--chrome-flags=" + FLAGS + extra], check=True, timeout=300,
                           env=dict(os.environ, CHROME_PATH=shutil.which("chromium") or "/usr/bin/chromium"))
            report = json.loads(out.read_text(encoding="utf-8"))
            failed = [a["id"] for a in report["audits"].values() if a.get("score") == 0 and a.get("scoreDisplayMode")
                      in ("binary", "numeric")]
            rows.append((theme, report["categories"]["accessibility"]["score"] * 100,
                         report["categories"]["best-practices"]["score"] * 100, failed, report["lighthouseVersion"]))
    finally:
        server.terminate()
        server.wait(10)
    lines = ["# Lighthouse: accessibility and best practices", "",
             "`python bench/lighthouse.py` on %s with Lighthouse %s and %s." % (
                 time.strftime("%Y-%m-%d"), rows[0][4],
                 subprocess.run([shutil.which("chromium"), "--version"], capture_output=True, text=True).stdout.strip()),
             "", "| theme | accessibility | best practices | audits failed |", "| --- | --- | --- | --- |"]
    for theme, a11y, practices, failed, _ in rows:
        lines.append("| %s | %.0f | %.0f | %s |" % (theme, a11y, practices, ", ".join(failed) or "none"))
    lines.append("")
    Path(ROOT / "bench" / "RESULTS-lighthouse.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
