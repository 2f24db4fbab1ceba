"""`pip install .` gives a working `sse-dashboard` command that serves the page (static files shipped)."""

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
import zipfile

import pytest

from conftest import ROOT, require_tool, wait_until

# The modules pyproject.toml ships, read from it: a new module cannot be forgotten here.
MODULES = [name + ".py" for name in re.findall(
    r'"(\w+)"', re.search(r"py-modules = \[(.*?)\]", (ROOT / "pyproject.toml").read_text(encoding="utf-8")).group(1))]
SHIPPED = MODULES + ["pyproject.toml", "README.md", "static"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    try:
        import setuptools  # noqa: F401
        import wheel as _wheel  # noqa: F401
        have_backend = True
    except ImportError:
        have_backend = False
    require_tool(have_backend, "setuptools and wheel (pip install -e .[test])")
    src = tmp_path_factory.mktemp("src")
    for name in SHIPPED:
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy2)(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(src)], check=True, timeout=120)
    return next(out.glob("sse_dashboard-*.whl"))


def test_wheel_has_the_modules_the_page_and_the_command(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "sse-dashboard = sse_server:main" in zf.read(entry_points).decode()
        metadata = zf.read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "streams.py" in MODULES and "sse_server.py" in MODULES
    for module in MODULES:
        assert module in names
    for asset in ("index.html", "app.js", "style.css", "favicon.svg"):
        assert any(n.endswith("/data/share/sse-dashboard/static/" + asset) for n in names), asset
    # No runtime dependency: only extras may require anything.
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert requires and all("extra ==" in line for line in requires), requires


def test_installed_command_serves_the_page(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / ("python.exe" if os.name == "nt" else "python")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, timeout=120)
    command = bindir / ("sse-dashboard.exe" if os.name == "nt" else "sse-dashboard")
    # Run from an unrelated folder so static/ beside the source cannot be found by accident.
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "xdg"), LOCALAPPDATA=str(tmp_path / "xdg"))
    proc = subprocess.Popen([str(command), "--port", "0"], cwd=str(tmp_path), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines = []
    try:
        import threading

        threading.Thread(target=lambda: lines.extend(l.decode() for l in proc.stdout), daemon=True).start()
        match = wait_until(lambda: re.search(r"http://127\.0\.0\.1:(\d+)/", "".join(lines)), timeout=15,
                           message="the installed server to start")
        base = "http://127.0.0.1:%s" % match.group(1)
        with urllib.request.urlopen(base + "/", timeout=5) as resp:
            assert resp.status == 200 and b"sse-dashboard" in resp.read()
        with urllib.request.urlopen(base + "/static/app.js", timeout=5) as resp:
            assert resp.headers["Content-Type"].startswith("text/javascript")
        with urllib.request.urlopen(base + "/api/metrics", timeout=5) as resp:
            assert json.load(resp)["system"]["source"] == "stdlib"  # no psutil in this venv
        with urllib.request.urlopen(base + "/api/health", timeout=5) as resp:
            assert json.load(resp)["storage"] == "ok"
        # Installed, the data lives in the per-user folder, not beside the code.
        assert (tmp_path / "xdg" / "sse-dashboard" / "dashboard.sqlite3").exists()
    finally:
        proc.kill()
        proc.wait(5)
        proc.stdout.close()
