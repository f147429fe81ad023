"""A scripted HTTP server on loopback, for hook edge cases that real Airflow servers do not produce on demand."""

from __future__ import annotations

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.tls import make_certificates


class Scripted:
    """Answers requests from a list of (status, headers, body) in order; the last one repeats."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, dict, bytes]] = []
        self.seen: list[tuple[str, str, bytes, dict]] = []

    def script(self, *answers) -> None:
        self.answers = [
            (status, headers or {}, body if isinstance(body, bytes) else json.dumps(body).encode())
            for status, headers, body in answers
        ]

    def next(self) -> tuple[int, dict, bytes]:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


@pytest.fixture(autouse=True)
def private_session_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STARSHIP_DAGS_SESSION_CACHE", str(tmp_path / "sessions"))
    return tmp_path / "sessions"


@pytest.fixture
def fake_server():
    yield from _serve(Scripted())


@pytest.fixture
def fake_tls_server(tmp_path):
    """The same over HTTPS, with a certificate from a throwaway CA (``.ca`` is its PEM file)."""
    certs = make_certificates(tmp_path / "tls")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs["cert"], certs["key"])
    scripted = Scripted()
    scripted.ca = certs["ca"]
    yield from _serve(scripted, context)


def _serve(scripted: Scripted, context: ssl.SSLContext | None = None):

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            scripted.seen.append((self.command, self.path, body, dict(self.headers)))
            status, headers, payload = scripted.next()
            self.send_response(status)
            headers = {"Content-Type": "application/json", **headers}
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_DELETE = do_PATCH = _answer

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    scheme = "https" if context is not None else "http"
    scripted.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    try:
        yield scripted
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def conn_env(monkeypatch):
    """Define a connection through AIRFLOW_CONN_* for the duration of a test."""

    def define(conn_id: str, **fields) -> str:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "starship", **fields}))
        return conn_id

    return define
