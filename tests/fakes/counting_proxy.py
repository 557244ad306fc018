"""A loopback reverse proxy in front of a real server: it forwards each POST and counts what passed.

Tests point a client at :attr:`CountingProxy.base_url` instead of the server's, then read
:attr:`CountingProxy.bodies` (every JSON body forwarded, in arrival order) and
:attr:`CountingProxy.max_in_flight` (the most requests open at once). ``before_forward(n, body)``,
when set, runs for the n-th request (from 1) before it is forwarded; returning False answers that
request with HTTP 503 instead (a test uses it to kill a client at a chosen request).
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class CountingProxy:
    """The proxy; a context manager (``with CountingProxy(server_base_url) as proxy: proxy.base_url``)."""

    def __init__(self, target: str, *, timeout: float = 600.0) -> None:
        self.target = target.rstrip("/")  # the server's /v1 root
        self.timeout = timeout
        self.bodies: list[dict | None] = []
        self.max_in_flight = 0
        self.before_forward: Callable[[int, dict | None], bool] | None = None
        self._arrived = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def start(self) -> CountingProxy:
        handler = type("Handler", (_Handler,), {"proxy": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> CountingProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @property
    def count(self) -> int:
        return len(self.bodies)

    def forward(self, path: str, raw: bytes) -> tuple[int, bytes]:
        """POST ``raw`` to the server (``path`` below its /v1 root): its status and body."""
        request = urllib.request.Request(
            self.target + path.removeprefix("/v1"), data=raw, headers={"Content-Type": "application/json"}
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()


class _Handler(BaseHTTPRequestHandler):
    proxy: CountingProxy  # set on the subclass made by CountingProxy.start

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        proxy = self.proxy
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        with proxy._lock:
            proxy._arrived += 1
            n = proxy._arrived
            proxy._in_flight += 1
            proxy.max_in_flight = max(proxy.max_in_flight, proxy._in_flight)
        try:
            if proxy.before_forward is not None and proxy.before_forward(n, body) is False:
                status, data = 503, b'{"error": {"message": "held by the test proxy", "code": 503}}'
            else:
                with proxy._lock:
                    proxy.bodies.append(body)
                status, data = proxy.forward(self.path, raw)
        finally:
            with proxy._lock:
                proxy._in_flight -= 1
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client is gone (killed by the test)
            pass
        self.close_connection = True
