"""Installed, sse-dashboard is one package, `sse_dashboard`, that lives beside anything on PyPI:
the wheel's only top-level name is sse_dashboard, and the PyPI packages `Events` and `guard`
(whose import names our modules used to take) neither break it nor, uninstalled, remove it."""

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
import urllib.request
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT, require_tool, wait_until

# What a build needs from the checkout: the package, the page and the example it maps in, the metadata
# (and the root's faces, which must not be installed).
SHIPPED = [p.name for p in ROOT.glob("*.py")] + ["sse_dashboard", "pyproject.toml", "README.md", "static", "examples"]


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """The wheel and the sdist, built from a copy of what ships (no build/ leftovers)."""
    try:
        import setuptools  # noqa: F401
        import wheel as _wheel  # noqa: F401
        have_backend = True
    except ImportError:
        have_backend = False
    require_tool(have_backend, "setuptools and wheel (pip install -e .[test])")
    src = tmp_path_factory.mktemp("src")
    for name in SHIPPED:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(src)], check=True, timeout=180)
    subprocess.run([sys.executable, "-c", "from setuptools import build_meta as b; b.build_sdist(%r)" % str(out)],
                   check=True, timeout=180, cwd=str(src), capture_output=True)
    return next(out.glob("sse_dashboard-*.whl")), next(out.glob("sse[-_]dashboard-*.tar.gz"))


def test_the_wheel_has_one_top_level_name_the_page_and_the_command(dist):
    wheel, sdist = dist
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        entry_points = zf.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
        metadata = zf.read(next(n for n in names if n.endswith("METADATA"))).decode()
        record = zf.read(next(n for n in names if n.endswith("RECORD"))).decode()
    tops = {line.split(",")[0].split("/")[0] for line in record.splitlines() if line}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"sse_dashboard"}, tops
    for module in ("app.py", "cli.py", "application.py", "web/server.py", "web/routes.py", "web/handlers/page.py", "web/streams.py", "events.py", "client.py", "__init__.py", "__main__.py"):
        assert "sse_dashboard/" + module in names
    for asset in ("index.html", "app.js", "style.css", "favicon.svg"):
        assert "sse_dashboard/static/" + asset in names
    assert "sse_dashboard/examples/alerts.example.json" in names  # --help names it
    # The root's faces stay in the checkout: installed, the one name is sse_dashboard.
    assert "sse_dashboard/sse_server.py" not in names and "sse_server.py" not in names
    assert not any(n.startswith("sse_dashboard/tests/") or n.startswith("sse_dashboard/bench/") for n in names)
    assert "sse-dashboard = sse_dashboard.cli:main" in entry_points
    import sse_dashboard
    assert "Version: %s" % sse_dashboard.__version__ in metadata  # one source for the version
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert requires and all("extra ==" in line for line in requires), requires  # no runtime dependency
    with tarfile.open(sdist) as tf:
        members = tf.getnames()
    assert any(m.endswith("/sse_dashboard/web/server.py") for m in members)
    assert any(m.endswith("/static/app.js") for m in members)


def test_installed_the_help_names_a_config_example_that_is_there(dist, tmp_path):
    """Issue 21: installed, --help pointed at alerts.example.json, which was not installed."""
    wheel, _ = dist
    site = tmp_path / "site-packages"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)  # what pip puts in site-packages (no venv needed to read --help)
    env = dict(os.environ, PYTHONPATH=str(site))
    out = subprocess.run([sys.executable, "-m", "sse_dashboard", "--help"], cwd=str(tmp_path), env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    marker = "an example --config file to copy:"
    assert marker in out.stdout, "--help names no example file:\n" + out.stdout[-400:]
    named = out.stdout.rpartition(marker)[2].strip()
    example = Path(named)
    assert example.is_file() and site in example.parents, named
    assert json.loads(example.read_text(encoding="utf-8"))["rules"]


def venv_with(tmp_path, wheel, *packages):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / ("python.exe" if os.name == "nt" else "python")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel), *packages],
                   check=True, timeout=300)
    return python, bindir / ("sse-dashboard.exe" if os.name == "nt" else "sse-dashboard")


def serve_and_check(command, tmp_path, *args):
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "xdg"), LOCALAPPDATA=str(tmp_path / "xdg"))
    data = tmp_path / "xdg" / "sse-dashboard"
    proc = subprocess.Popen([str(command), "--port", "0", *args], cwd=str(tmp_path), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines = []
    try:
        threading.Thread(target=lambda: lines.extend(line.decode() for line in proc.stdout), daemon=True).start()
        match = wait_until(lambda: re.search(r"dashboard at http://127\.0\.0\.1:(\d+)/", "".join(lines)), timeout=20,
                           message="the installed server to start: %s" % "".join(lines)[-500:])
        base = "http://127.0.0.1:%s" % match.group(1)
        with urllib.request.urlopen(base + "/", timeout=5) as resp:
            assert resp.status == 200 and b"sse-dashboard" in resp.read()
        with urllib.request.urlopen(base + "/static/app.js", timeout=5) as resp:
            assert resp.headers["Content-Type"].startswith("text/javascript")
        with urllib.request.urlopen(base + "/api/health", timeout=5) as resp:
            health = json.load(resp)
        assert health["storage"] == "ok"
        # Installed, the data lives in the per-user folder, not beside the code.
        assert (data / "dashboard.sqlite3").exists()
        return health
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
        assert "Traceback" not in "".join(lines), "".join(lines)


def test_installed_beside_events_and_guard_from_pypi_it_works_and_survives_their_removal(dist, tmp_path):
    wheel, _ = dist
    try:
        python, command = venv_with(tmp_path, wheel, "Events", "guard")
    except subprocess.CalledProcessError:
        require_tool(False, "the PyPI packages Events and guard (a package index)")
    health = serve_and_check(command, tmp_path)
    import sse_dashboard
    assert health["version"] == sse_dashboard.__version__
    version = subprocess.run([str(command), "--version"], capture_output=True, text=True, timeout=30)
    assert version.stdout.strip() == "sse-dashboard " + sse_dashboard.__version__
    # The other projects' modules are still theirs after importing ours, and ours import cleanly.
    # No name of ours is lent outside the package: every module loaded from sse_dashboard/ is named sse_dashboard.*.
    check = ("import events, guard, sse_dashboard.web.server; from sse_dashboard.client import Dashboard; "
             "import sys; assert 'sse_dashboard' not in events.__file__ and 'sse_dashboard' not in guard.__file__; "
             "assert sys.modules['events'] is events; "
             "lent = [n for n, m in list(sys.modules.items()) if 'sse_dashboard' in (getattr(m, '__file__', '') or '') "
             "and not n.startswith('sse_dashboard')]; assert not lent, lent")
    subprocess.run([str(python), "-c", check], check=True, timeout=60, cwd=str(tmp_path))
    subprocess.run([str(python), "-m", "pip", "uninstall", "-q", "-y", "Events", "guard"], check=True, timeout=120)
    serve_and_check(command, tmp_path)
    # python -m sse_dashboard is the same command
    version = subprocess.run([str(python), "-m", "sse_dashboard", "--version"], capture_output=True, text=True,
                             timeout=30, cwd=str(tmp_path))
    assert version.stdout.strip() == "sse-dashboard " + sse_dashboard.__version__
