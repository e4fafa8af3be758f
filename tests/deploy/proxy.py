"""An nginx reverse proxy for the deployment tests (``hotline serve`` itself comes from
:mod:`tests.support.spawn`).

It runs as a subprocess on 127.0.0.1 only, in a context manager that stops what it started (by
process, never by name), and proxies HTTP and WebSocket upgrades the way a platform edge does:
it appends the peer to ``X-Forwarded-For`` and passes ``Upgrade``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from hotline.loopback import free_port
from tests.support.spawn import stop

__all__ = ["NGINX", "nginx_proxy"]

#: The nginx binary (Debian puts it in /usr/sbin, which a non-root PATH may lack).
NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
)

_CONFIG = """\
daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    upstream hotline_http {{ server 127.0.0.1:{upstream}; }}
    upstream hotline_ws {{ server 127.0.0.1:{ws_upstream}; }}
    # A load balancer with no affinity between Twilio's two requests: the webhook (plain
    # HTTP) goes to one replica, the media-stream upgrade to another.
    map $http_upgrade $hotline_backend {{ default hotline_ws; '' hotline_http; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://$hotline_backend;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 300s;
        }}
    }}
}}
"""


def _wait_for_port(port: int, proc: subprocess.Popen[str], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} in {timeout} s")
        time.sleep(0.05)


@contextlib.contextmanager
def nginx_proxy(
    upstream: int, port: int | None = None, *, ws_upstream: int | None = None
) -> Iterator[str]:
    """nginx on ``127.0.0.1:port`` proxying to ``127.0.0.1:upstream``; yields its base URL.
    With ``ws_upstream``, WebSocket upgrades go there instead (plain HTTP to ``upstream``).

    Raises:
        RuntimeError: nginx is not installed (``apt-get install -y nginx``) or did not start.
    """
    if NGINX is None:
        raise RuntimeError("nginx is not installed: apt-get install -y nginx")
    port = free_port() if port is None else port
    with tempfile.TemporaryDirectory(prefix="hotline-nginx-") as d:
        conf = Path(d) / "nginx.conf"
        conf.write_text(
            _CONFIG.format(
                d=d,
                port=port,
                upstream=upstream,
                ws_upstream=upstream if ws_upstream is None else ws_upstream,
            )
        )
        proc = subprocess.Popen(
            [NGINX, "-p", d, "-e", f"{d}/error.log", "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _wait_for_port(port, proc, "nginx", 10)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop(proc, signal.SIGQUIT)  # graceful: the master waits for its worker
