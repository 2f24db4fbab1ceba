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
