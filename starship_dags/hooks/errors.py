"""What an HTTP answer means to the hook: worth another attempt or not, and what an error may say.

A retry is worth it for the network (a dropped or reset connection, a timeout, a truncated body)
and for 429, 502, 503, 504 and 500s that are not Starship's own application errors; never for a
certificate problem or another 4xx. An error message is built from the server's short ``error``
text only: Starship echoes the request (``kwargs``) and SQLAlchemy appends SQL parameters, both of
which can hold passwords or variable values, so both are cut, and known secrets are redacted.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable

import requests

TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})


class TruncatedBody(requests.exceptions.RequestException):
    """A 2xx response whose JSON body ends early: treated like a dropped connection."""


TRANSIENT_EXCEPTIONS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    TruncatedBody,
)


def is_transient_exception(exc: BaseException) -> bool:
    """Worth another attempt: the network, not a certificate (a TLS failure stays a failure)."""
    return isinstance(exc, TRANSIENT_EXCEPTIONS) and not isinstance(exc, requests.exceptions.SSLError)


def _is_starship_app_error(response: requests.Response) -> bool:
    """A 500 that Starship produced itself (JSON with ``error``) is deterministic: no retry."""
    if "json" not in response.headers.get("Content-Type", ""):
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and "error" in body


def is_transient_response(response: requests.Response) -> bool:
    if response.status_code in TRANSIENT_STATUSES:
        return True
    return response.status_code == 500 and not _is_starship_app_error(response)


def retry_after_seconds(response: requests.Response | None) -> float | None:
    """Seconds from a ``Retry-After`` header given as a number (HTTP dates are ignored)."""
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


_HTML_TAG = re.compile(r"<[^>]+>")
_SPACES = re.compile(r"\s+")
_CUT_MARKERS = (
    "[SQL:", "[parameters:", "Traceback (most recent call last)", "(Background on this error",
    "Failing row contains",  # PostgreSQL echoes the whole row (values, ciphertexts)
)
_MAX_DETAIL = 600


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def response_detail(response: requests.Response, secrets: Iterable[str] = ()) -> str:
    """A short, secret-free description of an error response.

    Starship echoes the request (``kwargs``) and SQLAlchemy appends the SQL parameters to its
    messages; both can hold passwords or variable values, so both are dropped.
    """
    text = ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        pieces = [str(body[k]) for k in ("error", "detail", "message") if body.get(k)]
        if body.get("error_message"):
            pieces.append(str(body["error_message"]))
        text = ": ".join(pieces)
    elif body is None:
        raw = response.text if response.encoding or response.content else ""
        text = html.unescape(_HTML_TAG.sub(" ", raw or ""))
    for marker in _CUT_MARKERS:
        if marker in text:
            text = text.split(marker, 1)[0]
    text = _SPACES.sub(" ", text).strip()
    if len(text) > _MAX_DETAIL:
        text = text[:_MAX_DETAIL] + "…"
    return redact(text, secrets)
