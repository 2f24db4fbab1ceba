"""The dashboard behind the README's TLS reverse proxy: Debian's nginx with a self-signed
certificate, started by the test, in front of a real server on port 0.

The page served through https must be able to write (its delete buttons), and foreign
origins must still be refused through the proxy."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess

import pytest

from conftest import require_tool, wait_until

NGINX_START_S = 5.0
# The README's location block (Security, "Behind a reverse proxy"), with the upstream and the
# Host variable filled in by each test.
NGINX_CONF = """
daemon off;
master_process off;
error_log stderr warn;
pid {dir}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name localhost;
        ssl_certificate {tls}/cert.pem;
        ssl_certificate_key {tls}/key.pem;
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_set_header Host {host_variable};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 1h;
        }}
    }}
}}
"""


def nginx_path() -> str | None:
    # /usr/sbin is not on every user's PATH, and that is where Debian puts nginx.
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for localhost (Python's ssl module cannot make one)."""
    openssl = shutil.which("openssl")
    require_tool(openssl is not None, "openssl (apt-get install -y openssl)")
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")],
                   check=True, capture_output=True, timeout=30)
    return folder


class Nginx:
    """nginx in the foreground (one process, no daemon) on ``port``, proxying to ``upstream``."""

    def __init__(self, executable: str, folder, tls, port: int, upstream: int, host_variable: str) -> None:
        self.port = port
        self.certificate = tls / "cert.pem"
        conf = folder / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=folder, tls=tls, port=port, upstream=upstream,
                                          host_variable=host_variable))
        self._log = folder / "stderr.log"
        with open(self._log, "wb") as log:
            # -e: the error log before the configuration is read (else /var/log/nginx, not ours to write).
            self.proc = subprocess.Popen([executable, "-p", str(folder), "-e", "stderr", "-c", str(conf)],
                                         stdout=subprocess.DEVNULL, stderr=log)

    def wait_ready(self) -> None:
        wait_until(self._ready, timeout=NGINX_START_S, message="nginx to listen on %d" % self.port)

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError("nginx exited: %s" % self._log.read_text(errors="replace"))
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    @property
    def url(self) -> str:
        return "https://localhost:%d" % self.port

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def tls_proxy(certificate, tmp_path):
    """start(upstream_port, host_variable, port) -> a running nginx in front of that port."""
    executable = nginx_path()
    require_tool(executable is not None, "nginx (apt-get install -y nginx)")
    started = []

    def start(upstream: int, host_variable: str = "$host", port: int | None = None) -> Nginx:
        folder = tmp_path / ("nginx%d" % len(started))
        folder.mkdir()
        proxy = Nginx(executable, folder, certificate, port or free_port(), upstream, host_variable)
        started.append(proxy)  # stopped at the end even if it never comes up
        proxy.wait_ready()
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


def post_through(proxy: Nginx, origin: str | None, path: str = "/api/events") -> tuple[int, dict]:
    """A write by hand over TLS (the way a script or another page's fetch reaches the proxy):
    (status, JSON body)."""
    body = json.dumps({"message": "through the proxy"}).encode()
    head = ["POST %s HTTP/1.1" % path, "Host: localhost:%d" % proxy.port, "Content-Type: application/json",
            "Content-Length: %d" % len(body), "Connection: close"]
    if origin is not None:
        head.append("Origin: " + origin)
    context = ssl.create_default_context(cafile=str(proxy.certificate))
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as sock:
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
            reply = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
    status_line, _, rest = reply.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2] or b"{}")


# --- the page through https ------------------------------------------------------------------

# (nginx's Host variable, whether the dashboard is told its public URL):
# the README's $host drops the port, so on a port other than 443 the page's origin is known only
# from --public-url; $http_host passes the port, and the page's https origin is then its own Host.
SETUPS = [pytest.param("$host", True, id="README-host-with-public-url"),
          pytest.param("$http_host", False, id="http_host-without-options")]


@pytest.mark.browser
@pytest.mark.parametrize("host_variable, with_public_url", SETUPS)
def test_the_page_through_nginx_tls_deletes_a_counter(make_server, tls_proxy, browser, host_variable,
                                                      with_public_url):
    port = free_port()
    server = make_server(interval_s=0.2, **({"public_url": "https://localhost:%d" % port} if with_public_url else {}))
    server.json("POST", "/api/metrics", {"counters": {"jobs": 3}, "gauges": {"depth": 5}})
    proxy = tls_proxy(server.port, host_variable, port)
    context = browser.new_context(ignore_https_errors=True)  # the test's own self-signed certificate
    try:
        page = context.new_page()
        dialogs = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
        page.goto(proxy.url + "/")
        assert page.evaluate("location.origin") == "https://localhost:%d" % port
        wait_until(lambda: page.text_content("#status-text") == "LIVE", timeout=5, message="LIVE through nginx")
        button = page.locator('#counters tr[data-name="jobs"] button.metric-delete')
        button.wait_for(timeout=3000)
        button.click()  # asks first (accepted), then DELETEs with the page's Origin
        refused = lambda: [m for m in dialogs if m.startswith("Could not delete")]  # noqa: E731
        wait_until(lambda: server.server.registry.snapshot()[0] == {} or refused(), timeout=3,
                   message="the counter deleted, or the page saying why not")
        assert not refused(), refused()
        wait_until(lambda: page.locator('#counters tr[data-name="jobs"]').count() == 0, message="row gone")
        # And a POST the page's own script makes.
        status = page.evaluate("""async () => (await fetch("/api/events", {method: "POST",
            headers: {"Content-Type": "application/json"}, body: JSON.stringify({message: "from the page"})})).status""")
        assert status == 201 and server.server.events.newest(1)[0].message == "from the page"
    finally:
        context.close()


# --- foreign origins through the proxy -------------------------------------------------------

def foreign_origins(port: int) -> list[str]:
    return ["https://evil.example",                 # another site
            "https://localhost:%d" % (port + 1),     # another port of the same host: same-site, not same-origin
            "https://localhost",                     # ... the default one
            "https://127.0.0.1:%d" % port,           # another name for the same address
            "null"]                                  # a sandboxed frame or a data: page


@pytest.mark.parametrize("host_variable, with_public_url", SETUPS)
def test_a_foreign_origin_through_the_proxy_is_still_403(make_server, tls_proxy, host_variable, with_public_url):
    port = free_port()
    server = make_server(**({"public_url": "https://localhost:%d" % port} if with_public_url else {}))
    proxy = tls_proxy(server.port, host_variable, port)
    refused = foreign_origins(port)
    if with_public_url:
        # The page is https there: plain http on that name is what a network attacker can forge.
        refused += ["http://localhost:%d" % port, "http://localhost"]
    for origin in refused:
        status, body = post_through(proxy, origin)
        assert status == 403 and "cross-site" in body["error"], (origin, status, body)
    assert server.server.events.last_id == 0
    # The page's own origin passes through the same proxy (so the 403s above are the Origin's doing).
    assert post_through(proxy, "https://localhost:%d" % port)[0] == 201
    assert post_through(proxy, None)[0] == 201  # scripts (curl) send no Origin
