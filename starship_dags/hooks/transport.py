"""The hook's transport: one HTTP exchange with retries, logins and typed errors, over ``HttpHook``.

:class:`AirflowHttpHook` reuses the HTTP provider as it is meant to be used, on every provider
release an Airflow of the matrix ships (4.13 to 6.x): ``run_with_advanced_retry()`` (tenacity) and
``run()`` with ``extra_options`` for each call, ``auth_type`` for the login
(:mod:`~starship_dags.hooks.auth`), and the connection's extras for the session (``verify``,
``proxies``, ``cert``, ...). What it adds:

* **Its own extras stay its own.** ``HttpHook`` sends unknown extras as HTTP headers, so
  :meth:`get_connection` hands it the connection without them (``token`` is a secret).
* **Every call's options are set on every provider release.** Older providers read them from
  ``extra_options``, newer ones from the session: :meth:`run_and_check` (public) sets both.
* **Retries** with exponential backoff on connection errors, timeouts, truncated bodies, 429
  (honouring ``Retry-After``), 502/503/504 and 500s that are not Starship's own application
  errors. Never on other 4xx. Each retry is logged with its reason.
* **Typed errors** (:mod:`starship_dags.exceptions`) naming the connection id, method, route and
  status, with SQL parameters, echoed request arguments and known secrets removed.

A hook is not shared between threads: :meth:`sibling` makes one for another thread.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable
from functools import cached_property
from typing import Any
from urllib.parse import urlparse

import requests
import tenacity
from airflow.providers.http.hooks.http import HttpHook

from starship_dags.exceptions import (
    StarshipAuthError,
    StarshipError,
    StarshipPermissionError,
    StarshipTLSError,
    StarshipTransportError,
    error_class_for,
)
from starship_dags.hooks.auth import REDIRECTS, Login, StarshipAuth
from starship_dags.hooks.errors import (
    TRANSIENT_EXCEPTIONS,
    TruncatedBody,
    is_transient_exception,
    is_transient_response,
    redact,
    response_detail,
    retry_after_seconds,
)

#: Connection extras this hook reads itself, never sent as HTTP headers.
OWN_EXTRAS = ("token", "connect_timeout", "read_timeout", "retries", "retry_max_wait", "max_batch_bytes",
              "session_cache", "max_log_post_bytes", "log_filename_template", "concurrency")
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 120.0
DEFAULT_RETRIES = 8  # attempts in all, the first one included: about a minute of waiting
DEFAULT_RETRY_MAX_WAIT = 60.0  # seconds between two attempts, at most
DEFAULT_RETRY_BUDGET = 600.0  # seconds spent retrying one call, at most
class AirflowHttpHook(HttpHook):
    """One Airflow's web server (Airflow 2) or api-server (Airflow 3), reached over HTTP.

    :param starship_conn_id: a connection of type ``starship`` (or ``http``): host is the Airflow
        URL, login/password a user of that Airflow, or password (or ``extra.token``) an API token.
    """

    conn_name_attr = "starship_conn_id"

    def __init__(self, starship_conn_id: str, *, retries: int | None = None, retry_max_wait: float | None = None,
                 **kwargs: Any) -> None:
        self.starship_conn_id = starship_conn_id
        self.login = Login(self, self._send)
        super().__init__(method="GET", http_conn_id=starship_conn_id,
                         auth_type=functools.partial(StarshipAuth, self.login.credentials), **kwargs)
        self._retries_arg = retries
        self._retry_max_wait_arg = retry_max_wait
        self._secrets: set[str] = set()
        self._stream = False
        self._ready = False
        self.request_count = 0  # HTTP exchanges, retries and logins included
        self.api_calls = 0  # calls to Starship or REST routes, each counted once (no retries, no logins)
        self.write_count = 0  # of which POST/PATCH/DELETE
        self.retry_count = 0
        self.attempts = 1  # of the last call: more than 1 when it was retried

    # ------------------------------------------------------------------ configuration

    @cached_property
    def connection(self):
        """The connection as Airflow has it (with every extra)."""
        return super().get_connection(self.starship_conn_id)

    @cached_property
    def extras(self) -> dict[str, Any]:
        try:
            return dict(self.connection.extra_dejson or {})
        except Exception:  # a malformed extra must not hide the real error later
            return {}

    def get_connection(self, conn_id: str):  # type: ignore[override]
        """What ``HttpHook`` builds each session from: the connection, read once, without the extras
        that are this hook's own (``HttpHook`` would send them as HTTP headers)."""
        if conn_id != self.starship_conn_id:
            return super().get_connection(conn_id)
        if "_http_connection" not in self.__dict__:
            from airflow.models.connection import Connection

            conn = self.connection
            kept = {k: v for k, v in self.extras.items() if k not in OWN_EXTRAS}
            self.__dict__["_http_connection"] = Connection(
                conn_id=conn.conn_id, conn_type=conn.conn_type, host=conn.host, login=conn.login,
                password=conn.password, schema=conn.schema, port=conn.port, extra=json.dumps(kept) if kept else None,
            )
        return self.__dict__["_http_connection"]

    def number(self, arg: float | None, key: str, default: float) -> float:
        """A numeric setting: the argument, else the connection's extra, else the default."""
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
    def retries(self) -> int:
        return max(1, int(self.number(self._retries_arg, "retries", DEFAULT_RETRIES)))

    @cached_property
    def retry_max_wait(self) -> float:
        return self.number(self._retry_max_wait_arg, "retry_max_wait", DEFAULT_RETRY_MAX_WAIT)

    @cached_property
    def timeout(self) -> Any:
        if "timeout" in self.extras:
            return self.extras["timeout"]
        return (self.number(None, "connect_timeout", DEFAULT_CONNECT_TIMEOUT),
                self.number(None, "read_timeout", DEFAULT_READ_TIMEOUT))

    @cached_property
    def verify(self) -> bool | str:
        """``verify`` as requests wants it: a bool, or the path of a CA bundle that exists.

        A form or an environment variable gives strings; ``"false"`` must not become a CA path.
        """
        value = self.extras.get("verify", self.extras.get("verify_ssl", True))
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in ("false", "0", "no", "off"):
                value = False
            elif lowered in ("true", "1", "yes", "on", ""):
                value = True
            elif not os.path.isfile(value) and not os.path.isdir(value):
                raise ValueError(
                    f"connection '{self.starship_conn_id}': extra 'verify' names a CA bundle that does "
                    f"not exist: {value!r} (give a file or directory path, true or false)"
                )
        else:
            value = bool(value) if value is not None else True
        if value is False:
            self.log.warning(
                "TLS certificate verification is OFF for connection '%s' (extra verify=false): "
                "anyone on the network path can read its credentials", self.starship_conn_id,
            )
        return value

    def add_secrets(self, values: Iterable[Any]) -> None:
        """Strings that must never appear in an error message this hook builds."""
        self._secrets.update(v for v in values if isinstance(v, str) and v)

    def _ensure_ready(self) -> None:
        if self._ready:
            return
        self.get_conn()  # sets base_url, on every provider release
        conn = self.connection
        self.add_secrets(self.login.setup(
            conn.login, conn.password or "", self.extras.get("token"),
            str(self.extras.get("session_cache", True)).lower() not in ("false", "0"),
        ))
        self._ready = True

    # ------------------------------------------------------------------ one exchange

    def run_and_check(self, session, prepped_request, extra_options):
        """``HttpHook``'s send, with this call's options set where every provider release reads them
        (``extra_options`` on some, the session on others); counts it and checks a JSON body's length."""
        extra_options = {**(extra_options or {}), "check_response": False, "allow_redirects": False,
                         "timeout": self.timeout, "stream": self._stream, "verify": self.verify}
        session.stream, session.verify = self._stream, self.verify
        self.request_count += 1
        if hasattr(prepped_request.body, "seek"):  # a file body: every attempt sends it from the start
            prepped_request.body.seek(0)
        response = super().run_and_check(session, prepped_request, extra_options)
        encoded = response.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
        # Content-Length counts the bytes on the wire: compressed ones, when the body was compressed.
        if (not self._stream and response.status_code < 300 and not encoded
                and "json" in response.headers.get("Content-Type", "")):
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) != len(response.content):
                raise TruncatedBody(f"body ended after {len(response.content)} of {declared} bytes")
        return response

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
        self.attempts = retry_state.attempt_number + 1
        outcome = retry_state.outcome
        if outcome is not None and outcome.failed:
            exc = outcome.exception()
            reason = f"{type(exc).__name__}: {redact(str(exc), self._secrets)[:200]}"
        else:
            reason = f"HTTP {outcome.result().status_code}" if outcome is not None else "unknown"
        sleep = retry_state.next_action.sleep if retry_state.next_action else 0
        self.log.warning("Retrying %s %s on connection '%s' after %s (attempt %d of %d, waiting %.1f s)",
                         self.method, self._endpoint, self.starship_conn_id, reason, retry_state.attempt_number + 1,
                         self.retries, sleep)

    def _send(self, method: str, endpoint: str, *, params=None, data=None, json=None, headers=None,
              stream: bool = False) -> requests.Response:
        """One HTTP exchange through ``HttpHook.run`` with tenacity retries; any status comes back.

        ``stream``: the body is read by the caller, in pieces (``iter_content``)."""
        self._ensure_ready()
        self.method, self._endpoint, self._stream, self.attempts = method, "/" + endpoint, stream, 1
        kwargs: dict[str, Any] = {"json": json} if json is not None else {}
        if method in ("GET", "HEAD"):
            payload = params
        else:
            payload = data
            if params:
                kwargs["params"] = params
        retry_args = {
            "stop": tenacity.stop_after_attempt(self.retries) | tenacity.stop_after_delay(DEFAULT_RETRY_BUDGET),
            "wait": self._wait,
            "retry": tenacity.retry_if_exception(is_transient_exception) | tenacity.retry_if_result(is_transient_response),
            "before_sleep": self._log_retry,
            "retry_error_callback": lambda state: state.outcome.result(),
            "reraise": True,
        }
        try:
            return self.run_with_advanced_retry(retry_args, endpoint=endpoint, data=payload, headers=headers,
                                                extra_options={}, **kwargs)
        except requests.exceptions.SSLError as exc:
            raise StarshipTLSError(self.starship_conn_id, method, "/" + endpoint, None,
                                   redact(str(exc), self._secrets)[:300]) from None
        except TRANSIENT_EXCEPTIONS as exc:
            raise StarshipTransportError(
                self.starship_conn_id, method, "/" + endpoint, None,
                f"{type(exc).__name__}: {redact(str(exc), self._secrets)[:300]} (gave up after {self.attempts} attempts)",
            ) from None
        finally:
            self._stream = False

    def request(self, method: str, endpoint: str, *, params: dict[str, Any] | None = None,
                data: bytes | dict | Any = None, json: Any = None, headers: dict[str, str] | None = None,
                item: str | None = None, ok_statuses: Iterable[int] = (), stream: bool = False) -> requests.Response:
        """Call ``endpoint`` (a path under the Airflow URL), logging in when the server asks, and map
        errors to typed exceptions. Statuses in ``ok_statuses`` are returned instead of raised."""
        shown = "/" + endpoint
        self.api_calls += 1
        if method != "GET":
            self.write_count += 1
        send = dict(params=params, data=data, json=json, headers=headers, stream=stream)
        response = self._send(method, endpoint, **send)
        if self.login.needs_auth(response):
            self.login.authenticate(method, shown, response, self._secrets)
            response = self._send(method, endpoint, **send)
            if self.login.needs_auth(response):
                raise StarshipAuthError(self.starship_conn_id, method, shown, response.status_code,
                                        "still refused after logging in")
        else:
            self.login.answered(response)
        status = response.status_code
        if status < 300 or status in set(ok_statuses):
            return response
        if status in REDIRECTS:
            where = urlparse(response.headers.get("Location", "")).path or "?"
            if self.login.credentials.server == "af2-session":
                # A logged-in Airflow 2 user without the permission is sent to the home page.
                raise StarshipPermissionError(
                    self.starship_conn_id, method, shown, status,
                    f"redirected to {where}; Starship needs the 'can read on Configurations' permission "
                    "(the Admin role has it)", item=item,
                )
            raise StarshipError(self.starship_conn_id, method, shown, status, f"unexpected redirect to {where}", item=item)
        detail = response_detail(response, self._secrets)
        if is_transient_response(response):
            detail = f"{detail} (gave up after {self.attempts} attempts)".lstrip()
        raise error_class_for(status)(self.starship_conn_id, method, shown, status, detail, item=item)

    def json_of(self, method: str, endpoint: str, **kwargs: Any) -> Any:
        """:meth:`request`'s answer as JSON (None for an empty answer)."""
        response = self.request(method, endpoint, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise StarshipError(
                self.starship_conn_id, method, "/" + endpoint, response.status_code,
                "the answer is not JSON; is the URL the Airflow web server with Starship installed?",
            ) from None

    # ------------------------------------------------------------------ threads

    def sibling(self) -> AirflowHttpHook:
        """A new hook on the same connection, for another thread: it takes this hook's connection
        (no second lookup), secrets and login, but has a session and retry state of its own. Make
        it in the task's own thread: on Airflow 3 a task asks for connections through its
        supervisor, which a thread of the task cannot reach."""
        self._ensure_ready()  # reads the connection here: a thread must not ask Airflow for it
        hook = type(self)(self.starship_conn_id, retries=self._retries_arg, retry_max_wait=self._retry_max_wait_arg)
        for name in ("connection", "_http_connection"):
            hook.__dict__[name] = self.get_connection(self.starship_conn_id) if name == "_http_connection" \
                else self.connection
        hook.add_secrets(self._secrets)
        hook._ready = True
        hook.get_conn()  # sets base_url
        hook.login.adopt(self.login)
        return hook

    @property
    def login_count(self) -> int:
        return self.login.count
