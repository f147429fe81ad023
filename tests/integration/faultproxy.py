"""A loopback HTTP(S) proxy in front of one Airflow server that injects faults on request.

Tests put it between the migration and a source or target server (the connection's host is the
proxy's URL) and arm :class:`Fault` rules. Everything not matched by a rule is forwarded as is,
including redirects and cookies, so logins work through it. Optionally it speaks TLS with a
given certificate (the TLS tests use it with a self-signed one).

Faults:

* ``status``: answer ``status`` (500/502/503/429...) without forwarding; ``retry_after`` adds the
  header. The upstream server never sees the request.
* ``reset``: close the connection without an answer; ``after_forward`` forwards first, so the
  server did the work and only the answer is lost (the nasty case for writes).
* ``slow``: forward, then wait ``delay`` seconds before answering (longer than the client's
  read timeout, the client gives up while the server has done the work).
* ``truncate``: forward, then send the headers and only half of the body, and close.
* ``hook``: forward nothing, call ``action()`` (e.g. restart the upstream server), then go on
  as if no rule matched.

While the upstream server cannot be reached the proxy answers 502, as a load balancer would.
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
              "content-length"}


@dataclass
class Fault:
    """Inject ``kind`` into requests whose ``METHOD /path?query`` matches ``pattern``.

    ``skip`` matching requests pass untouched first; then ``times`` of them get the fault.
    """

    pattern: str
    kind: str
    times: int = 1
    skip: int = 0
    status: int = 503
    retry_after: str | None = None
    delay: float = 0.0
    after_forward: bool = False
    action: Callable[[], None] | None = None
    seen: int = 0
    injected: int = 0

    def take(self, request_line: str) -> bool:
        if not re.search(self.pattern, request_line):
            return False
        self.seen += 1
        if self.seen <= self.skip or self.injected >= self.times:
            return False
        self.injected += 1
        return True


@dataclass
class FaultProxy:
    upstream: str
    certfile: str | None = None
    keyfile: str | None = None
    faults: list[Fault] = field(default_factory=list)
    log: list[tuple[str, int]] = field(default_factory=list)  # (request line, status or -1 for a fault)
    injected: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        parsed = urlparse(self.upstream)
        self._up_host, self._up_port = parsed.hostname, parsed.port
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _any(self):
                proxy._handle(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _any

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if self.certfile:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.certfile, self.keyfile)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        scheme = "https" if self.certfile else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def arm(self, *faults: Fault) -> None:
        with self._lock:
            self.faults = list(faults)
            self.injected.clear()
            self.log.clear()

    def count(self, pattern: str) -> int:
        """Requests seen whose request line matches ``pattern`` (faulted ones included)."""
        with self._lock:
            return sum(1 for line, _ in self.log if re.search(pattern, line))

    # ------------------------------------------------------------------ one request

    def _pick(self, line: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.take(line):
                    self.injected[fault.kind] += 1
                    return fault
        return None

    def _record(self, line: str, status: int) -> None:
        with self._lock:
            self.log.append((line, status))

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        line = f"{handler.command} {handler.path}"
        fault = self._pick(line)
        if fault is not None and fault.kind == "hook":
            assert fault.action is not None
            fault.action()
            fault = None
        if fault is not None and fault.kind == "status":
            self._record(line, -1)
            headers = {"Content-Type": "text/html"}
            if fault.retry_after is not None:
                headers["Retry-After"] = fault.retry_after
            self._answer(handler, fault.status, headers, f"<h1>injected {fault.status}</h1>".encode())
            return
        if fault is not None and fault.kind == "reset" and not fault.after_forward:
            self._record(line, -1)
            self._reset(handler)
            return
        try:
            status, headers, payload = self._forward(handler, body)
        except OSError:
            self._record(line, 502)
            self._answer(handler, 502, {"Content-Type": "text/html"}, b"<h1>upstream unreachable</h1>")
            return
        if fault is None:
            self._record(line, status)
            self._answer(handler, status, headers, payload)
            return
        self._record(line, -1)
        if fault.kind == "reset":
            self._reset(handler)
        elif fault.kind == "slow":
            time.sleep(fault.delay)
            self._answer(handler, status, headers, payload)
        elif fault.kind == "truncate":
            self._answer(handler, status, headers, payload, send=len(payload) // 2)
            self._reset(handler)
        else:
            raise ValueError(f"unknown fault kind {fault.kind!r}")

    def _forward(self, handler: BaseHTTPRequestHandler, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(self._up_host, self._up_port, timeout=300)
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP}
            if body:
                headers["Content-Length"] = str(len(body))
            conn.request(handler.command, handler.path, body=body or None, headers=headers)
            answer = conn.getresponse()
            payload = answer.read()
            kept = [(k, v) for k, v in answer.getheaders() if k.lower() not in HOP_BY_HOP]
            return answer.status, kept, payload
        finally:
            conn.close()

    @staticmethod
    def _answer(handler: BaseHTTPRequestHandler, status: int, headers, payload: bytes, send: int | None = None) -> None:
        items = headers.items() if isinstance(headers, dict) else headers
        try:
            handler.send_response_only(status)
            for key, value in items:
                handler.send_header(key, value)
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload if send is None else payload[:send])
            handler.wfile.flush()
        except OSError:
            handler.close_connection = True

    @staticmethod
    def _reset(handler: BaseHTTPRequestHandler) -> None:
        """Drop the connection with a TCP reset, no answer."""
        handler.close_connection = True
        try:
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            handler.connection.close()
        except OSError:
            pass
