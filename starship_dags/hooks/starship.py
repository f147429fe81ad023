"""StarshipHook: every route of the Starship API, with auth, retries, paging and batching.

The hook is the only place that speaks HTTP. It reuses :class:`HttpHook` for the session, the
connection extras (``timeout``, ``verify``, ``proxies``, ``cert``), ``run()`` and
``run_with_advanced_retry()`` (tenacity). What it adds:

* **Auth detected from the server, not configured.** A token (``extra.token``, or a password
  with no login) is sent as ``Authorization: Bearer``. With login and password the first call
  goes out without credentials and the answer says which Airflow this is: a 302 to ``/login/``
  is an Airflow 2 webserver (web login with its CSRF form, one session reused for the whole
  task, renewed once if a later call is sent back to ``/login/``); a 401 is an Airflow 3
  api-server (``POST /auth/token`` exchanges the password for a JWT, refreshed once on 401).
* **Retries** with exponential backoff on connection errors, timeouts, truncated bodies, 429
  (honouring ``Retry-After``), 502/503/504 and 500s that are not Starship's own application
  errors. Never on other 4xx. Each retry is logged with its reason.
* **Typed errors** (:mod:`starship_dags.exceptions`) naming the connection id, method, route and
  status, with SQL parameters, echoed request arguments and known secrets removed.
* **Paging** of DAG runs, task instances and history with limit/offset until ``dag_run_count``
  is covered, de-duplicated by natural key.
* **Byte-bounded batches** for list POSTs; a 413 splits the batch in two and tries again.

A hook instance holds one HTTP session and is not meant to be shared between threads.
"""

from __future__ import annotations

import copy
import html
import json
import logging
import os
import re
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import IO, Any
from urllib.parse import quote, urlparse

import requests
import tenacity
from airflow.providers.http.hooks.http import HttpHook

from starship_dags import CONN_TYPE, CONNECTION_FORM
from starship_dags.exceptions import (
    StarshipAuthError,
    StarshipError,
    StarshipNotInstalledError,
    StarshipPayloadTooLargeError,
    StarshipPermissionError,
    StarshipRateLimitedError,
    StarshipTLSError,
    StarshipTransportError,
    error_class_for,
)
from starship_dags.hooks.session_cache import SessionCache
from starship_dags.translate import history_natural_key, ti_natural_key

log = logging.getLogger(__name__)

API_PREFIX = "api/starship"

#: Connection extras this hook reads itself. They are never sent as HTTP headers (HttpHook
#: turns unknown extras into headers).
OWN_EXTRAS = (
    "token",
    "connect_timeout",
    "read_timeout",
    "retries",
    "retry_max_wait",
    "max_batch_bytes",
    "session_cache",
)

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 120.0
DEFAULT_RETRIES = 8  # attempts in all, the first one included: about a minute of waiting
DEFAULT_RETRY_MAX_WAIT = 60.0  # seconds between two attempts, at most
DEFAULT_RETRY_BUDGET = 600.0  # seconds spent retrying one call, at most
#: Below the Airflow 2 webserver's default ``allowed_payload_size`` of 1 MiB.
DEFAULT_MAX_BATCH_BYTES = 900_000

TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})
#: Answers to a login that mean "wrong credentials": Airflow 2 shows the form again (200, or a
#: redirect back to it), Airflow 3 answers 401/403.
REFUSED_LOGIN_STATUSES = frozenset({200, 302, 303, 401, 403})
REDIRECTS = frozenset({301, 302, 303, 307, 308})


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
    if response is None:
        return None
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
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


def iter_byte_batches(encoded: Sequence[bytes], max_bytes: int) -> Iterator[list[bytes]]:
    """Group pre-serialised JSON items so that each ``{"key": [...]}`` body stays under max_bytes.

    An item larger than max_bytes on its own still forms a batch of one (the server decides).
    """
    batch: list[bytes] = []
    size = 0
    for item in encoded:
        cost = len(item) + 1  # the comma
        if batch and size + cost > max_bytes:
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += cost
    if batch:
        yield batch


@dataclass
class PostResult:
    """What a list POST did: how many items went in, and each refused item with the reason."""

    sent: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    #: Items of a batch refused with 409 after an attempt whose answer was lost: that attempt may
    #: have stored them. The caller looks at the target to tell (see HistoryOperator.post).
    uncertain: list[dict[str, Any]] = field(default_factory=list)
    #: With ``hold_tail``: how many items at the end were kept back, unsent (the last, partly filled batch).
    held: int = 0


def _envelope(key: str, encoded: Sequence[bytes]) -> bytes:
    return b'{"' + key.encode() + b'": [' + b",".join(encoded) + b"]}"


def encode_item(item: dict[str, Any]) -> bytes:
    return json.dumps(item, default=str, ensure_ascii=False, separators=(",", ":")).encode()


class StarshipHook(HttpHook):
    """Talks to one Airflow through its Starship plugin (and, for log and XCom fallbacks, its REST API).

    :param starship_conn_id: a connection of type ``starship`` (or ``http``): host is the Airflow
        URL, login/password a user of that Airflow, or password (or ``extra.token``) an API token.
    :param max_batch_bytes: largest body of a list POST; defaults to the connection's
        ``extra.max_batch_bytes`` or 900,000 bytes.
    """

    conn_name_attr = "starship_conn_id"
    default_conn_name = "starship_source"
    conn_type = CONN_TYPE
    hook_name = "Starship (Airflow migration)"

    def __init__(
        self,
        starship_conn_id: str = default_conn_name,
        *,
        max_batch_bytes: int | None = None,
        retries: int | None = None,
        retry_max_wait: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(method="GET", http_conn_id=starship_conn_id, **kwargs)
        self.starship_conn_id = starship_conn_id
        self._max_batch_bytes_arg = max_batch_bytes
        self._retries_arg = retries
        self._retry_max_wait_arg = retry_max_wait
        self._session: requests.Session | None = None
        self._auth_mode: str | None = None  # "token", "password" or "none"
        self._server_auth: str | None = None  # "af2-session", "af3-jwt", "bearer" or "open"
        self._secrets: set[str] = set()
        self._cache: SessionCache | None = None
        self._cache_entry: dict[str, Any] | None = None
        self.request_count = 0  # HTTP exchanges, retries and logins included
        self.api_calls = 0  # calls to Starship or REST routes, each counted once (no retries, no logins)
        self.write_count = 0  # of which POST/PATCH/DELETE
        self.login_count = 0
        self.retry_count = 0
        self._attempts = 1

    # ------------------------------------------------------------------ connection form

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return copy.deepcopy(CONNECTION_FORM)

    # ------------------------------------------------------------------ configuration

    @cached_property
    def connection(self):
        return self.get_connection(self.starship_conn_id)

    @cached_property
    def extras(self) -> dict[str, Any]:
        try:
            return dict(self.connection.extra_dejson or {})
        except Exception:  # a malformed extra must not hide the real error later
            return {}

    def _number(self, arg: float | None, key: str, default: float) -> float:
        if arg is not None:
            return arg
        value = self.extras.get(key)
        if value in (None, ""):
            return default
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"connection '{self.starship_conn_id}': extra '{key}' must be a number, got {value!r}"
            ) from None

    @cached_property
    def max_batch_bytes(self) -> int:
        return int(self._number(self._max_batch_bytes_arg, "max_batch_bytes", DEFAULT_MAX_BATCH_BYTES))

    @cached_property
    def retries(self) -> int:
        return max(1, int(self._number(self._retries_arg, "retries", DEFAULT_RETRIES)))

    @cached_property
    def retry_max_wait(self) -> float:
        return self._number(self._retry_max_wait_arg, "retry_max_wait", DEFAULT_RETRY_MAX_WAIT)

    def _timeout(self) -> Any:
        if "timeout" in self.extras:
            return self.extras["timeout"]
        return (
            self._number(None, "connect_timeout", DEFAULT_CONNECT_TIMEOUT),
            self._number(None, "read_timeout", DEFAULT_READ_TIMEOUT),
        )

    def add_secrets(self, values: Iterable[Any]) -> None:
        """Strings that must never appear in an error message this hook builds."""
        for value in values:
            if isinstance(value, str) and value:
                self._secrets.add(value)

    # ------------------------------------------------------------------ session (HttpHook overrides)

    def get_connection(self, conn_id: str):  # type: ignore[override]
        # HttpHook asks for the connection on every session it builds; ask Airflow once.
        if conn_id == self.starship_conn_id and "connection" in self.__dict__:
            return self.__dict__["connection"]
        return super().get_connection(conn_id)

    def _extract_auth(self, connection) -> Any:
        # HttpHook would send login/password as HTTP Basic auth; Starship never accepts that.
        return None

    def _configure_session_from_extra(self, session, connection, extra_options):
        session = super()._configure_session_from_extra(session, connection, extra_options)
        for key in OWN_EXTRAS:
            session.headers.pop(key, None)
        session.verify = self._verify_setting(session.verify)
        if session.verify is False:
            self.log.warning(
                "TLS certificate verification is OFF for connection '%s' (extra verify=false): "
                "anyone on the network path can read its credentials",
                self.starship_conn_id,
            )
        return session

    def _verify_setting(self, value: Any) -> bool | str:
        """``verify`` as requests wants it: a bool, or the path of a CA bundle that exists.

        A form or an environment variable gives strings; ``"false"`` must not become a CA path.
        """
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in ("false", "0", "no", "off"):
                return False
            if lowered in ("true", "1", "yes", "on", ""):
                return True
            if not os.path.isfile(value) and not os.path.isdir(value):
                raise ValueError(
                    f"connection '{self.starship_conn_id}': extra 'verify' names a CA bundle that does "
                    f"not exist: {value!r} (give a file or directory path, true or false)"
                )
            return value
        return bool(value) if value is not None else True

    def get_conn(self, headers: dict[str, Any] | None = None, extra_options: dict[str, Any] | None = None):
        """One session per hook: cookies (Airflow 2 login) and tokens live as long as the task."""
        if self._session is None:
            options = {"check_response": False, "allow_redirects": False, "timeout": self._timeout()}
            self._session = super().get_conn(None, options)
            for key in OWN_EXTRAS:  # also when the connection has no extra at all
                self._session.headers.pop(key, None)
            self._session.headers.setdefault("Accept", "application/json")
            self._setup_credentials()
        return self._session

    def run_and_check(self, session, prepped_request, extra_options):
        self.request_count += 1
        if hasattr(prepped_request.body, "seek"):  # a file body: every attempt sends it from the start
            prepped_request.body.seek(0)
        response = super().run_and_check(session, prepped_request, extra_options)
        encoded = response.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
        # Content-Length counts the bytes on the wire: compressed ones, when the body was compressed.
        if response.status_code < 300 and "json" in response.headers.get("Content-Type", "") and not encoded:
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) != len(response.content):
                raise TruncatedBody(f"body ended after {len(response.content)} of {declared} bytes")
        return response

    # ------------------------------------------------------------------ auth

    def _setup_credentials(self) -> None:
        conn = self.connection
        token = self.extras.get("token")
        password = conn.password or ""
        if token:
            self._auth_mode = "token"
        elif password and not conn.login:
            self._auth_mode, token = "token", password
        elif conn.login:
            self._auth_mode = "password"
        else:
            self._auth_mode = "none"
        self.add_secrets([password, token or ""])
        if token:
            self._bearer(token)
        if self._auth_mode == "password" and str(self.extras.get("session_cache", True)).lower() not in ("false", "0"):
            self._cache = SessionCache(self.base_url, conn.login, password)
            self._use_cached(self._cache.load())

    def _use_cached(self, entry: dict[str, Any] | None) -> bool:
        """Start from a login another task of this worker made (see session_cache)."""
        if not entry or entry == self._cache_entry:
            return False
        session = self.get_conn()
        if entry.get("kind") == "af2-session":
            session.cookies.clear()
            for name, value in (entry.get("cookies") or {}).items():
                session.cookies.set(name, value)
        elif entry.get("kind") == "af3-jwt" and entry.get("token"):
            self._bearer(entry["token"])
        else:
            return False
        self._cache_entry = entry
        self._server_auth = entry["kind"]
        return True

    def _remember_login(self) -> None:
        if self._cache is None:
            return
        session = self.get_conn()
        if self._server_auth == "af2-session":
            entry = {"kind": "af2-session", "cookies": session.cookies.get_dict()}
        else:
            entry = {"kind": "af3-jwt", "token": session.headers["Authorization"].split(" ", 1)[1]}
        self._cache.save(entry)
        self._cache_entry = entry

    def _bearer(self, token: str) -> None:
        self.add_secrets([token])
        self.get_conn().headers["Authorization"] = f"Bearer {token}"

    @staticmethod
    def _login_redirect(response: requests.Response) -> bool:
        return response.status_code in REDIRECTS and "/login" in response.headers.get("Location", "")

    def _needs_auth(self, response: requests.Response) -> bool:
        if response.status_code == 401 or self._login_redirect(response):
            return True
        # Airflow 3 answers a malformed (not an expired) token with 403 "Invalid JWT token".
        return response.status_code == 403 and "invalid jwt" in response.text[:300].lower()

    def _authenticate(self, method: str, route: str, refused: requests.Response) -> None:
        """Log in according to what the server answered; raise StarshipAuthError if we cannot."""
        if self._auth_mode != "password":
            what = "the API token was refused" if self._auth_mode == "token" else "no credentials"
            raise StarshipAuthError(self.starship_conn_id, method, route, refused.status_code, what)
        if self._cache is None:
            self._login(refused)
            return
        with self._cache.login_lock():
            # Another task may have logged in while this one waited for the lock.
            entry = self._cache.load()
            if entry and entry.get("kind") == "refused":
                raise StarshipAuthError(
                    self.starship_conn_id, entry.get("method", "POST"), entry.get("route", "/login/"),
                    entry.get("status"),
                    "this login and password were refused moments ago (not tried again, to spare the "
                    "server's login limit)",
                )
            if not self._use_cached(entry):
                try:
                    self._login(refused)
                except StarshipRateLimitedError:
                    raise
                except StarshipAuthError as err:
                    # Only a clear "wrong credentials" is remembered, never a server that was
                    # briefly unwell (a 502 from a restarting webserver must not lock tasks out).
                    if err.method == "POST" and err.status in REFUSED_LOGIN_STATUSES:
                        self._cache.save({"kind": "refused", "method": err.method, "route": err.route,
                                          "status": err.status})
                    raise
                self._remember_login()

    def _login(self, refused: requests.Response) -> None:
        if self._login_redirect(refused):
            self._airflow2_login()
        else:
            self._airflow3_token()

    def _airflow2_login(self) -> None:
        """Log in to an Airflow 2 webserver through its form; the session cookie does the rest."""
        conn = self.connection
        session = self.get_conn()
        session.cookies.clear()
        page = self._send("GET", "login/")
        match = re.search(r'<input[^>]*name="csrf_token"[^>]*value="([^"]*)"', page.text) or re.search(
            r'<input[^>]*value="([^"]*)"[^>]*name="csrf_token"', page.text
        )
        if page.status_code != 200 or not match:
            raise StarshipAuthError(
                self.starship_conn_id, "GET", "/login/", page.status_code,
                "the server redirected to /login/ but no Airflow 2 login form was found there",
            )
        self.login_count += 1
        self.log.info("Logging in to Airflow 2 webserver of connection '%s' as '%s'", self.starship_conn_id, conn.login)
        answer = self._send(
            "POST",
            "login/",
            data={"username": conn.login, "password": conn.password or "", "csrf_token": match.group(1)},
            headers={"Referer": self.url_from_endpoint("login/")},
        )
        if answer.status_code == 429:
            raise StarshipRateLimitedError(self.starship_conn_id, "POST", "/login/", 429, "login rate limit")
        if not (answer.status_code in REDIRECTS and "/login" not in answer.headers.get("Location", "")):
            raise StarshipAuthError(
                self.starship_conn_id, "POST", "/login/", answer.status_code,
                "Airflow 2 web login refused the username or password",
            )
        self._server_auth = "af2-session"

    def _airflow3_token(self) -> None:
        """Exchange login and password for a JWT at an Airflow 3 api-server's ``/auth/token``."""
        conn = self.connection
        session = self.get_conn()
        session.headers.pop("Authorization", None)
        self.login_count += 1
        self.log.info("Requesting an API token for connection '%s' as '%s'", self.starship_conn_id, conn.login)
        answer = self._send("POST", "auth/token", json={"username": conn.login, "password": conn.password or ""})
        token = None
        if answer.status_code in (200, 201):
            try:
                token = answer.json().get("access_token")
            except ValueError:
                token = None
        if not token:
            raise StarshipAuthError(
                self.starship_conn_id, "POST", "/auth/token", answer.status_code,
                response_detail(answer, self._secrets) or "no access_token in the answer",
            )
        self._bearer(token)
        self._server_auth = "af3-jwt"

    # ------------------------------------------------------------------ sending

    def _wait(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        response = None if outcome is None or outcome.failed else outcome.result()
        hinted = retry_after_seconds(response)
        if hinted is not None:
            return min(hinted, self.retry_max_wait)
        # A 429 without Retry-After (the Airflow 2 login limiter sends none; its window is 40 s)
        # backs off from 5 s; everything else from 0.5 s.
        base = 5.0 if response is not None and response.status_code == 429 else 0.5
        return min(base * 2 ** (retry_state.attempt_number - 1), self.retry_max_wait)

    def _log_retry(self, retry_state: tenacity.RetryCallState) -> None:
        self.retry_count += 1
        self._attempts = retry_state.attempt_number + 1
        outcome = retry_state.outcome
        if outcome is not None and outcome.failed:
            exc = outcome.exception()
            reason = f"{type(exc).__name__}: {redact(str(exc), self._secrets)[:200]}"
        else:
            reason = f"HTTP {outcome.result().status_code}" if outcome is not None else "unknown"
        sleep = retry_state.next_action.sleep if retry_state.next_action else 0
        self.log.warning(
            "Retrying %s %s on connection '%s' after %s (attempt %d of %d, waiting %.1f s)",
            self.method, self._current_endpoint, self.starship_conn_id, reason,
            retry_state.attempt_number + 1, self.retries, sleep,
        )

    def _send(
        self, method: str, endpoint: str, *, params=None, data=None, json=None, headers=None, stream: bool = False
    ) -> requests.Response:
        """One HTTP exchange through ``HttpHook.run`` with tenacity retries; any status comes back.

        ``stream``: the body is read by the caller, in pieces (``iter_content``).
        """
        session = self.get_conn()
        session.stream = stream
        self.method = method
        self._current_endpoint = "/" + endpoint
        self._attempts = 1
        kwargs: dict[str, Any] = {}
        if json is not None:
            kwargs["json"] = json
        if method in ("GET", "HEAD"):
            payload = params
        else:
            payload = data
            if params:
                kwargs["params"] = params
        retry_args = {
            "stop": tenacity.stop_after_attempt(self.retries) | tenacity.stop_after_delay(DEFAULT_RETRY_BUDGET),
            "wait": self._wait,
            "retry": tenacity.retry_if_exception(is_transient_exception)
            | tenacity.retry_if_result(is_transient_response),
            "before_sleep": self._log_retry,
            "retry_error_callback": lambda state: state.outcome.result(),
            "reraise": True,
        }
        try:
            return self.run_with_advanced_retry(retry_args, endpoint=endpoint, data=payload, headers=headers, **kwargs)
        except requests.exceptions.SSLError as exc:
            raise StarshipTLSError(
                self.starship_conn_id, method, "/" + endpoint, None, redact(str(exc), self._secrets)[:300],
            ) from None
        except TRANSIENT_EXCEPTIONS as exc:
            raise StarshipTransportError(
                self.starship_conn_id, method, "/" + endpoint, None,
                f"{type(exc).__name__}: {redact(str(exc), self._secrets)[:300]} (gave up after {self._attempts} attempts)",
            ) from None
        finally:
            session.stream = False

    def request(
        self,
        method: str,
        route: str,
        *,
        params: dict[str, Any] | None = None,
        data: bytes | dict | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        item: str | None = None,
        prefix: str = API_PREFIX,
        ok_statuses: Iterable[int] = (),
        stream: bool = False,
    ) -> requests.Response:
        """Call ``{prefix}/{route}``, logging in when the server asks, and map errors to typed exceptions.

        Statuses in ``ok_statuses`` are returned instead of raised.
        """
        endpoint = f"{prefix}/{route}" if prefix else route
        shown = "/" + endpoint
        self.api_calls += 1
        if method != "GET":
            self.write_count += 1
        send = dict(params=params, data=data, json=json, headers=headers, stream=stream)
        response = self._send(method, endpoint, **send)
        if self._needs_auth(response):
            self._authenticate(method, shown, response)
            response = self._send(method, endpoint, **send)
            if self._needs_auth(response):
                raise StarshipAuthError(
                    self.starship_conn_id, method, shown, response.status_code,
                    "still refused after logging in",
                )
        elif self._server_auth is None and response.status_code < 300:
            self._server_auth = "bearer" if self._auth_mode == "token" else "open"
        status = response.status_code
        if status < 300 or status in set(ok_statuses):
            return response
        if status in REDIRECTS:
            where = urlparse(response.headers.get("Location", "")).path or "?"
            if self._server_auth == "af2-session":
                # A logged-in Airflow 2 user without the permission is sent to the home page.
                raise StarshipPermissionError(
                    self.starship_conn_id, method, shown, status,
                    f"redirected to {where}; Starship needs the 'can read on Configurations' permission "
                    "(the Admin role has it)",
                    item=item,
                )
            raise StarshipError(self.starship_conn_id, method, shown, status, f"unexpected redirect to {where}", item=item)
        detail = response_detail(response, self._secrets)
        if is_transient_response(response):
            detail = f"{detail} (gave up after {self._attempts} attempts)".lstrip()
        raise error_class_for(status)(self.starship_conn_id, method, shown, status, detail, item=item)

    def _json(self, method: str, route: str, **kwargs: Any) -> Any:
        response = self.request(method, route, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise StarshipError(
                self.starship_conn_id, method, f"/{API_PREFIX}/{route}", response.status_code,
                "the answer is not JSON; is the URL the Airflow web server with Starship installed?",
            ) from None

    # ------------------------------------------------------------------ info

    def info(self) -> dict[str, Any]:
        """``{"airflow_version", "starship_version"}``; older Starship only has ``/airflow_version``."""
        try:
            return self._json("GET", "info")
        except StarshipError as err:
            if err.status != 404:
                raise
        response = self.request("GET", "airflow_version", ok_statuses=(404,))
        if response.status_code == 404:
            raise StarshipNotInstalledError(self.starship_conn_id, "GET", f"/{API_PREFIX}/info", 404)
        return {"airflow_version": response.text.strip().strip('"'), "starship_version": None}

    @cached_property
    def airflow_version(self) -> str:
        return str(self.info()["airflow_version"])

    @cached_property
    def airflow_major(self) -> int:
        return int(self.airflow_version.split(".", 1)[0])

    def sibling(self, *, version: str | None = None) -> StarshipHook:
        """A new hook on the same connection, for another thread: a hook's session and retry state
        are its own. It masks the same secrets, takes the connection this hook has read (the thread
        does not ask Airflow for it again), takes ``version`` as the server's or else the version
        this hook has read, if any (no request); the login comes from the session cache."""
        hook = type(self)(self.starship_conn_id, max_batch_bytes=self._max_batch_bytes_arg, retries=self._retries_arg,
                          retry_max_wait=self._retry_max_wait_arg)
        if "connection" in self.__dict__:
            hook.__dict__["connection"] = self.__dict__["connection"]
        hook.add_secrets(self._secrets)
        hook.known_version(version or self.__dict__.get("airflow_version"))
        return hook

    def known_version(self, version: Any) -> None:
        """Take ``version`` as the server's Airflow version, read moments ago by another task of the
        same run: spares this hook its version request. Nothing changes when ``version`` is empty or
        the hook already has one."""
        if version and "airflow_version" not in self.__dict__:
            self.__dict__["airflow_version"] = str(version)  # where the cached property keeps it

    def health(self) -> str:
        return self.request("GET", "health").text

    def env_vars(self) -> dict[str, str]:
        return self._json("GET", "env_vars")

    # ------------------------------------------------------------------ pools, variables, connections

    def get_pools(self) -> list[dict[str, Any]]:
        return self._json("GET", "pools")

    def create_pool(self, pool: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", "pools", json=pool, item=f"pool {pool.get('name')!r}")

    def delete_pool(self, name: str) -> None:
        self.request("DELETE", "pools", params={"name": name}, item=f"pool {name!r}")

    def get_variables(self) -> list[dict[str, Any]]:
        return self._json("GET", "variables")

    def create_variable(self, variable: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", "variables", json=variable, item=f"variable {variable.get('key')!r}")

    def delete_variable(self, key: str) -> None:
        self.request("DELETE", "variables", params={"key": key}, item=f"variable {key!r}")

    def get_connections(self) -> list[dict[str, Any]]:
        return self._json("GET", "connections")

    def create_connection(self, connection: dict[str, Any]) -> dict[str, Any]:
        return self._json(
            "POST", "connections", json=connection, item=f"connection {connection.get('conn_id')!r}"
        )

    def delete_connection(self, conn_id: str) -> None:
        self.request("DELETE", "connections", params={"conn_id": conn_id}, item=f"connection {conn_id!r}")

    # ------------------------------------------------------------------ DAGs

    def get_dags(self) -> list[dict[str, Any]]:
        return self._json("GET", "dags")

    def set_dag_paused(self, dag_id: str, is_paused: bool) -> Any:
        return self._json("PATCH", "dags", json={"dag_id": dag_id, "is_paused": is_paused}, item=f"DAG {dag_id!r}")

    # ------------------------------------------------------------------ DAG runs and task instances

    def get_dag_runs(self, dag_id: str, *, limit: int = 100, offset: int = 0) -> dict[str, Any]:
        return self._json("GET", "dag_runs", params={"dag_id": dag_id, "limit": limit, "offset": offset})

    def get_task_instances(self, dag_id: str, *, limit: int = 100, offset: int = 0) -> dict[str, Any]:
        """Task instances of ``limit`` runs starting at ``offset`` (Starship pages by runs)."""
        return self._json("GET", "task_instances", params={"dag_id": dag_id, "limit": limit, "offset": offset})

    def get_task_instance_history(self, dag_id: str, *, limit: int = 100, offset: int = 0) -> dict[str, Any]:
        return self._json(
            "GET", "task_instance_history", params={"dag_id": dag_id, "limit": limit, "offset": offset}
        )

    def _iter_pages(
        self,
        fetch: Callable[..., dict[str, Any]],
        dag_id: str,
        list_key: str,
        natural_key: Callable[[dict[str, Any]], Hashable],
        page_size: int,
        seen_runs: set[str],
        first: dict[str, Any] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Page by runs until ``dag_run_count`` is covered; yield each natural key once.

        A page holds every row of its runs. The server orders by start date without a tie-breaker
        and each page is its own query, so pages may overlap when the source changes or dates tie:
        a run met on an earlier page is skipped whole. Only run ids (``seen_runs``) outlive a page,
        not a key per row, so reading a DAG's task instances holds about one string per run.
        ``first`` is page one when the caller already has it. Returns the last ``dag_run_count``.
        """
        offset, page, total = 0, first, 0
        page_keys: set[Hashable] = set()  # of the page being read
        while True:
            if page is None:
                page = fetch(dag_id, limit=page_size, offset=offset)
            total = int(page.get("dag_run_count") or 0)
            page_runs: set[str] = set()
            for row in page.get(list_key) or []:
                run_id = row["run_id"]
                if run_id in seen_runs:
                    continue
                key = natural_key(row)
                if key not in page_keys:
                    page_keys.add(key)
                    page_runs.add(run_id)
                    yield row
            seen_runs |= page_runs
            page_keys.clear()
            offset += page_size
            if offset >= total:
                return total
            page = None

    def iter_dag_runs(
        self, dag_id: str, *, page_size: int = 500, first: dict[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every run of the DAG; if paging lost some (ties in start dates), one more read in a single page."""
        # the rows' own run id strings (every row is of this DAG): the caller keeps them anyway
        seen: set[str] = set()
        run_key = lambda r: r["run_id"]  # noqa: E731
        total = yield from self._iter_pages(self.get_dag_runs, dag_id, "dag_runs", run_key, page_size, seen, first)
        if len(seen) < total:
            self.log.warning("%s: paging returned %d of %d runs; reading them in one request", dag_id, len(seen), total)
            for run in self.get_dag_runs(dag_id, limit=total + page_size, offset=0).get("dag_runs") or []:
                if run["run_id"] not in seen:
                    seen.add(run["run_id"])
                    yield run

    def iter_task_instances(self, dag_id: str, *, page_size: int = 100) -> Iterator[dict[str, Any]]:
        return self._iter_pages(self.get_task_instances, dag_id, "task_instances", ti_natural_key, page_size, set())

    def iter_task_instance_history(self, dag_id: str, *, page_size: int = 100) -> Iterator[dict[str, Any]]:
        return self._iter_pages(
            self.get_task_instance_history, dag_id, "task_instances", history_natural_key, page_size, set()
        )

    def post_list(
        self, route: str, key: str, items: Sequence[dict[str, Any]], *, describe: Callable[[dict], str] | None = None,
        hold_tail: bool = False,
    ) -> PostResult:
        """POST ``{key: items}`` in batches under ``max_batch_bytes``, isolating bad items.

        A 413 halves the batch. Any other refusal of a batch (409, 400, Starship's own 500)
        halves it too, until the item the server refuses stands alone; it is reported by name
        in the result and every other item still goes in. Auth and transport errors are raised.

        ``hold_tail``: the last batch is not sent (``result.held`` counts its items), so that a
        caller writing a stream of pages can send it with the next page's items, in full bodies.
        """
        result = PostResult()
        encoded = [encode_item(item) for item in items]
        batches = list(iter_byte_batches(encoded, self.max_batch_bytes))
        if hold_tail and batches:
            result.held = len(batches.pop())
        for batch in batches:
            self._post_batch(route, key, batch, describe, result)
        return result

    def _post_batch(self, route: str, key: str, batch: list[bytes], describe, result: PostResult) -> None:
        try:
            self.request(
                "POST", route, data=_envelope(key, batch),
                headers={"Content-Type": "application/json"},
                item=f"batch of {len(batch)}",
            )
            result.sent += len(batch)
            return
        except (StarshipAuthError, StarshipTransportError, StarshipRateLimitedError):
            raise
        except StarshipError as err:
            if err.status is None or (err.status >= 500 and err.status != 500):
                raise
            if err.status == 409 and self._attempts > 1:
                self.log.warning(
                    "%s answered 409 for a batch of %d on attempt %d: an earlier attempt whose answer was "
                    "lost may have stored it; checking the target", route, len(batch), self._attempts,
                )
                result.uncertain.extend(json.loads(item) for item in batch)
                return
            if len(batch) == 1:
                name = describe(json.loads(batch[0])) if describe else "one item"
                if isinstance(err, StarshipPayloadTooLargeError):
                    reason = f"{len(batch[0])} bytes on its own exceeds the target's request size limit (HTTP 413)"
                else:
                    reason = f"HTTP {err.status}: {err.detail}"
                result.failed.append((name, reason))
                return
            if isinstance(err, StarshipPayloadTooLargeError):
                self.log.info("%s answered 413 for %d items; splitting in two", route, len(batch))
            else:
                self.log.info("%s refused a batch of %d (HTTP %s); splitting it to find the item", route, len(batch), err.status)
        half = len(batch) // 2
        self._post_batch(route, key, batch[:half], describe, result)
        self._post_batch(route, key, batch[half:], describe, result)

    def create_dag_runs(self, dag_runs: Sequence[dict[str, Any]], *, hold_tail: bool = False) -> PostResult:
        return self.post_list("dag_runs", "dag_runs", dag_runs, describe=lambda r: f"run {r.get('run_id')!r}",
                              hold_tail=hold_tail)

    def create_task_instances(self, task_instances: Sequence[dict[str, Any]], *, hold_tail: bool = False) -> PostResult:
        return self.post_list("task_instances", "task_instances", task_instances, describe=_describe_ti,
                              hold_tail=hold_tail)

    def create_task_instance_history(self, rows: Sequence[dict[str, Any]], *, hold_tail: bool = False) -> PostResult:
        return self.post_list("task_instance_history", "task_instances", rows, describe=_describe_try,
                              hold_tail=hold_tail)

    def delete_dag_runs(self, dag_id: str) -> None:
        """Deletes **every** run of the DAG (Starship has no per-run delete)."""
        self.request("DELETE", "dag_runs", params={"dag_id": dag_id}, item=f"DAG {dag_id!r}")

    # ------------------------------------------------------------------ XCom and task logs

    @staticmethod
    def _ti_params(dag_id: str, run_id: str, task_id: str, map_index: int) -> dict[str, Any]:
        return {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "map_index": map_index}

    # Starship (Airflow 2.8+; task logs only where ASTRONOMER_ENVIRONMENT is local or cloud)

    def get_xcoms(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> list[dict[str, Any]]:
        """``[{"key", "value"}]`` with ``value`` the base64 of the stored bytes."""
        return self._json("GET", "xcom", params=self._ti_params(dag_id, run_id, task_id, map_index)) or []

    def create_xcom(self, xcom: dict[str, Any]) -> Any:
        return self._json("POST", "xcom", json=xcom, item=_describe_ti(xcom) + f" key {xcom.get('key')!r}")

    def delete_xcoms(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> None:
        """Deletes every XCom of the task instance (Starship has no per-key delete)."""
        self.request("DELETE", "xcom", params=self._ti_params(dag_id, run_id, task_id, map_index))

    def open_task_log(
        self, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int
    ) -> requests.Response | None:
        """The raw log file as a streamed response (read it with ``iter_content``), or None if there is none."""
        params = {**self._ti_params(dag_id, run_id, task_id, map_index), "try_number": try_number}
        response = self.request("GET", "task_log", params=params, stream=True, ok_statuses=(404,),
                                headers={"Accept": "*/*"})
        if response.status_code == 404:
            response.close()
            return None
        return response

    def put_task_log(
        self, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int, body: bytes | IO[bytes]
    ) -> None:
        """Write (replace) one log file; ``body`` may be an open file, sent in pieces."""
        params = {**self._ti_params(dag_id, run_id, task_id, map_index), "try_number": try_number}
        self.request("POST", "task_log", params=params, data=body, headers={"Content-Type": "application/octet-stream"},
                     item=f"log of {_describe_ti(params)} try {try_number}")

    def delete_task_log(self, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> None:
        params = {**self._ti_params(dag_id, run_id, task_id, map_index), "try_number": try_number}
        self.request("DELETE", "task_log", params=params)

    # The Airflow REST API (same server, same login or token): /api/v1 on Airflow 2, /api/v2 on 3

    @property
    def rest_prefix(self) -> str:
        return "api/v1" if self.airflow_major < 3 else "api/v2"

    @staticmethod
    def rest_ti_route(dag_id: str, run_id: str, task_id: str) -> str:
        return "dags/{}/dagRuns/{}/taskInstances/{}".format(*(quote(str(p), safe="") for p in (dag_id, run_id, task_id)))

    def open_rest_log(
        self, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int
    ) -> requests.Response | None:
        """A task log as the server's log reader renders it, streamed: plain text from Airflow 2,
        newline-delimited JSON records from Airflow 3. None when the task instance is unknown."""
        accept = "text/plain" if self.airflow_major < 3 else "application/x-ndjson"
        response = self.request(
            "GET", f"{self.rest_ti_route(dag_id, run_id, task_id)}/logs/{int(try_number)}", prefix=self.rest_prefix,
            params={"full_content": "true", "map_index": map_index}, headers={"Accept": accept}, stream=True,
            ok_statuses=(404,),
        )
        if response.status_code == 404:
            response.close()
            return None
        return response

    def rest_xcom_keys(self, dag_id: str, run_id: str, task_id: str, map_index: int) -> list[str]:
        found = self._json("GET", self.rest_ti_route(dag_id, run_id, task_id) + "/xcomEntries", prefix=self.rest_prefix,
                           params={"map_index": map_index, "limit": 1000})
        return [entry["key"] for entry in (found or {}).get("xcom_entries") or []]

    def rest_xcom_value(self, dag_id: str, run_id: str, task_id: str, map_index: int, key: str) -> Any:
        """The stored value of one XCom, as JSON (Airflow 3 stores XComs as JSON)."""
        found = self._json(
            "GET", f"{self.rest_ti_route(dag_id, run_id, task_id)}/xcomEntries/{quote(key, safe='')}",
            prefix=self.rest_prefix, params={"map_index": map_index},
        )
        return (found or {}).get("value")

    def rest_put_xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int, key: str, value: Any,
                      *, replace: bool = False) -> None:
        """Create an XCom (``replace``: update an existing one) through the Airflow 3 REST API."""
        route = self.rest_ti_route(dag_id, run_id, task_id) + "/xcomEntries"
        item = f"XCom {key!r} of {_describe_ti(self._ti_params(dag_id, run_id, task_id, map_index))}"
        if replace:
            self._json("PATCH", f"{route}/{quote(key, safe='')}", prefix=self.rest_prefix,
                       json={"value": value, "map_index": map_index}, item=item)
        else:
            self._json("POST", route, prefix=self.rest_prefix, json={"key": key, "value": value, "map_index": map_index},
                       item=item)

    def rest_dag(self, dag_id: str) -> dict[str, Any] | None:
        """The REST API's view of one DAG (pause state, next run, file token); None if unknown."""
        response = self.request("GET", f"dags/{quote(dag_id, safe='')}", prefix=self.rest_prefix, ok_statuses=(404,),
                                item=f"DAG {dag_id!r}")
        return None if response.status_code == 404 else response.json()

    def rest_active_runs(self, dag_id: str) -> list[dict[str, Any]]:
        """Queued and running runs of a DAG (none when the DAG is unknown)."""
        response = self.request(
            "GET", f"dags/{quote(dag_id, safe='')}/dagRuns", prefix=self.rest_prefix, ok_statuses=(404,),
            params={"state": ["queued", "running"], "limit": 100}, item=f"DAG {dag_id!r}",
        )
        return [] if response.status_code == 404 else list(response.json().get("dag_runs") or [])

    def rest_reparse(self, file_token: str) -> bool:
        """Ask the DAG processor to parse a DAG file soon (Airflow 2.6+ and 3); False if it cannot be asked."""
        try:
            response = self.request("PUT", f"parseDagFile/{quote(file_token, safe='')}", prefix=self.rest_prefix,
                                    ok_statuses=(404, 409))
        except StarshipError as err:  # a courtesy: the processor re-parses on its own anyway
            log.info("Could not ask for a re-parse: %s", err)
            return False
        return response.status_code < 300

    # ------------------------------------------------------------------ misc

    def test_connection(self) -> tuple[bool, str]:
        try:
            info = self.info()
        except Exception as err:  # the connection form shows this text
            return False, str(err)
        return True, f"Starship {info.get('starship_version')} on Airflow {info.get('airflow_version')}"


def _describe_ti(row: dict[str, Any]) -> str:
    return "task instance {}/{}/{}[{}]".format(
        row.get("dag_id"), row.get("run_id"), row.get("task_id"), row.get("map_index", -1)
    )


def _describe_try(row: dict[str, Any]) -> str:
    return f"{_describe_ti(row)} try {row.get('try_number')}"
