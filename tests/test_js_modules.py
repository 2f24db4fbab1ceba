"""The page's pure modules (static/format.js, static/axis.js) under node's own test runner."""

from __future__ import annotations

import shutil
import subprocess

from conftest import ROOT, require_tool


def test_node_test_passes_for_the_pages_pure_modules():
    node = shutil.which("node")
    require_tool(node is not None, "node (apt-get install -y nodejs)")
    result = subprocess.run([node, "--test", "tests/js/"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout and "# pass 0" not in result.stdout


FLATTEN_IN_NODE = """
import { flattenSnapshot } from "./static/series.js";
let input = "";
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  process.stdout.write(JSON.stringify(JSON.parse(input).map(flattenSnapshot)));
});
"""


def test_the_page_flattens_a_snapshot_exactly_as_the_server_does(server, tmp_path):
    """#22: the page's live points and the stored history are keyed by two flattenings, one in
    Python and one in static/series.js; they had drifted apart (the page had no server.*)."""
    import json

    from sse_dashboard.sampler import flatten_snapshot

    node = shutil.which("node")
    require_tool(node is not None, "node (apt-get install -y nodejs)")
    server.json("POST", "/api/metrics", {"counters": {"jobs": 3, 'hits{route="/a"}': 2}, "gauges": {"depth": -1.5}})
    real = server.json("GET", "/api/metrics")[1]
    odd = [
        {"system": {"cpu_percent": None, "cpu_per_core": [1.5, None, 0], "memory_used_bytes": 2 ** 60,
                    "source": "stdlib", "filesystems": [{"mountpoint": "/"}], "load_1": 0.0}},
        {"counters": {}, "gauges": {"g": 0}, "server": {"clients": 0, "rss_bytes": None, "uptime": 1.5}},
        {},
    ]
    snapshots = [real] + odd
    script = tmp_path / "flatten.mjs"
    script.write_text(FLATTEN_IN_NODE.replace("./static/", (ROOT / "static").as_uri() + "/"), encoding="utf-8")
    done = subprocess.run([node, str(script)], input=json.dumps(snapshots), capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    def as_floats(rows):  # JavaScript's numbers are doubles: 2**60 comes back as its nearest double
        return [{key: float(value) for key, value in row.items()} for row in rows]

    assert as_floats(json.loads(done.stdout)) == as_floats([flatten_snapshot(s) for s in snapshots])
