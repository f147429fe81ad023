"""What an answer means: retry classification, Retry-After, secret-free error details."""

from __future__ import annotations

import json

import pytest
import requests

from starship_dags.hooks.errors import (
    is_transient_response,
    response_detail,
    retry_after_seconds,
)


def response(status: int, body=b"", headers=None) -> requests.Response:
    answer = requests.Response()
    answer.status_code = status
    answer._content = body if isinstance(body, bytes) else json.dumps(body).encode()
    answer.headers.update({"Content-Type": "application/json", **(headers or {})})
    return answer


@pytest.mark.parametrize(
    ("status", "body", "transient"),
    [
        (429, b"", True),
        (502, b"<html>bad gateway</html>", True),
        (503, b"", True),
        (504, b"", True),
        (500, b"Internal Server Error", True),
        (500, {"error": "Unknown Error", "error_message": "Unconsumed column names: x"}, False),
        (400, {"error": "Data Error"}, False),
        (401, b"", False),
        (404, b"", False),
        (409, {"error": "Integrity Error (Duplicate Record?)"}, False),
        (413, b"<html>too large</html>", False),
    ],
)
def test_retry_classification(status, body, transient):
    assert is_transient_response(response(status, body)) is transient


def test_retry_after_header():
    assert retry_after_seconds(response(429, headers={"Retry-After": "3"})) == 3.0
    assert retry_after_seconds(response(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})) is None
    assert retry_after_seconds(response(429)) is None


def test_error_detail_drops_sql_parameters_and_secrets():
    body = {
        "error": "Integrity Error (Duplicate Record?)",
        "error_message": "duplicate key value\nDETAIL: Key (key)=(k) already exists.\n"
        "[SQL: INSERT INTO variable ...]\n[parameters: {'val': 'hunter2-secret'}]",
        "kwargs": {"key": "k", "val": "hunter2-secret"},
    }
    detail = response_detail(response(409, body), secrets=["tok-123"])
    assert "already exists" in detail
    assert "hunter2-secret" not in detail and "[SQL" not in detail
    assert response_detail(response(500, {"error": "failed for tok-123"}), ["tok-123"]) == "failed for ***"
    row = {"error": "null value in column \"conn_id\"\nDETAIL: Failing row contains (4, null, http, gAAAA-cipher)."}
    assert "gAAAA-cipher" not in response_detail(response(500, row))
    html = response_detail(response(413, b"<html><h1>Request Entity Too Large</h1></html>", {"Content-Type": "text/html"}))
    assert html == "Request Entity Too Large"
