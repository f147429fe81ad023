"""How a hook proves who it is to an Airflow, plugged into ``HttpHook`` as its ``auth_type``.

``HttpHook`` builds a new ``requests`` session for every call and asks its ``auth_type`` for the
credentials of that session. :class:`StarshipAuth` is that ``requests.auth.AuthBase``: it adds what
the hook's :class:`Credentials` hold (a bearer token, or an Airflow 2 web session's cookies) to each
request, and keeps the cookies each answer sets. No method of ``HttpHook`` is overridden for it.

:class:`Login` fills the credentials, finding out from the server's first answer which Airflow it is:

* a token (``extra.token``, or a password without a login) is sent as ``Authorization: Bearer``;
* with a login and a password, the first call goes out without credentials. A redirect to
  ``/login/`` is an Airflow 2 webserver: the hook logs in through its form (CSRF token and session
  cookie), once per task, again if a later call is sent back to ``/login/``. A 401 is an Airflow 3
  api-server: ``POST /auth/token`` exchanges the password for a JWT, refreshed once on 401.

Logins are shared between the tasks of a worker through :mod:`~starship_dags.hooks.session_cache`
(an Airflow 2 webserver allows a few logins a minute), and a refused password is remembered there
so that the other tasks fail at once instead of spending login attempts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import requests
from requests.cookies import RequestsCookieJar, extract_cookies_to_jar

from starship_dags.exceptions import StarshipAuthError, StarshipRateLimitedError
from starship_dags.hooks.errors import response_detail
from starship_dags.hooks.session_cache import SessionCache

#: Answers to a login that mean "wrong credentials": Airflow 2 shows the form again (200, or a
#: redirect back to it), Airflow 3 answers 401/403.
REFUSED_LOGIN_STATUSES = frozenset({200, 302, 303, 401, 403})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CSRF = (re.compile(r'<input[^>]*name="csrf_token"[^>]*value="([^"]*)"'),
         re.compile(r'<input[^>]*value="([^"]*)"[^>]*name="csrf_token"'))


class Credentials:
    """What a hook sends with every request: a bearer token, or the cookies of a web session."""

    def __init__(self) -> None:
        self.token: str | None = None
        self.cookies = RequestsCookieJar()
        #: "af2-session", "af3-jwt", "bearer" or "open": what the server accepted (None: not known yet)
        self.server: str | None = None

    def take(self, other: Credentials) -> None:
        """Hold what ``other`` holds (a copy: later logins of either stay their own)."""
        self.token, self.server = other.token, other.server
        self.cookies.clear()
        self.cookies.update(other.cookies)


class StarshipAuth(requests.auth.AuthBase):
    """The ``auth_type`` of a :class:`~starship_dags.hooks.transport.AirflowHttpHook` (bound to its
    credentials with ``functools.partial``). ``HttpHook`` passes the connection's login and password
    when it has them; they are not sent: Airflow accepts neither Basic auth nor a bare password."""

    def __init__(self, credentials: Credentials, *_login_password: Any) -> None:
        self.credentials = credentials

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if self.credentials.token:
            request.headers["Authorization"] = f"Bearer {self.credentials.token}"
        else:
            request.headers.pop("Authorization", None)
        if len(self.credentials.cookies):
            request.headers.pop("Cookie", None)
            request.prepare_cookies(self.credentials.cookies)
        request.register_hook("response", self._keep_cookies)
        return request

    def _keep_cookies(self, response: requests.Response, **_: Any) -> None:
        if getattr(response.raw, "_original_response", None) is not None:
            extract_cookies_to_jar(self.credentials.cookies, response.request, response.raw)


class Login:
    """Fills a hook's :class:`Credentials` from its connection and logs in when the server asks.

    ``hook`` is the :class:`~starship_dags.hooks.transport.AirflowHttpHook` it logs in for (its
    connection, URL and log), ``send(method, endpoint, **kwargs)`` its raw exchange (retries, no
    error mapping)."""

    def __init__(self, hook: Any, send: Callable[..., requests.Response]) -> None:
        self.hook = hook
        self.send = send
        self.credentials = Credentials()
        self.mode = "none"  # "token", "password" or "none"
        self.cache: SessionCache | None = None
        self._cache_entry: dict[str, Any] | None = None
        self.count = 0  # logins made

    @property
    def conn_id(self) -> str:
        return self.hook.starship_conn_id

    def setup(self, login: str | None, password: str, token: str | None, use_cache: bool) -> list[str]:
        """Decide the mode from the connection; returns the secrets to keep out of messages."""
        if token:
            self.mode = "token"
        elif password and not login:
            self.mode, token = "token", password
        elif login:
            self.mode = "password"
        if token:
            self.credentials.token = token
        if self.mode == "password" and use_cache:
            self.cache = SessionCache(self.hook.base_url, login or "", password)
            self.use_cached(self.cache.load())
        return [password, token or ""]

    def adopt(self, other: Login) -> None:
        """Start from another hook's login (a thread's hook from its task's)."""
        self.mode, self.cache = other.mode, other.cache
        self.credentials.take(other.credentials)

    def use_cached(self, entry: dict[str, Any] | None) -> bool:
        """Start from a login another task of this worker made."""
        if not entry or entry == self._cache_entry:
            return False
        if entry.get("kind") == "af2-session":
            self.credentials.cookies.clear()
            for name, value in (entry.get("cookies") or {}).items():
                self.credentials.cookies.set(name, value)
        elif entry.get("kind") == "af3-jwt" and entry.get("token"):
            self.credentials.token = entry["token"]
        else:
            return False
        self._cache_entry = entry
        self.credentials.server = entry["kind"]
        return True

    def answered(self, response: requests.Response) -> None:
        """Note what an accepted call says about the server (before any login)."""
        if self.credentials.server is None and response.status_code < 300:
            self.credentials.server = "bearer" if self.mode == "token" else "open"

    @staticmethod
    def login_redirect(response: requests.Response) -> bool:
        return response.status_code in REDIRECTS and "/login" in response.headers.get("Location", "")

    def needs_auth(self, response: requests.Response) -> bool:
        if response.status_code == 401 or self.login_redirect(response):
            return True
        # Airflow 3 answers a malformed (not an expired) token with 403 "Invalid JWT token".
        return response.status_code == 403 and "invalid jwt" in response.text[:300].lower()

    def authenticate(self, method: str, route: str, refused: requests.Response, secrets: Iterable[str]) -> None:
        """Log in according to what the server answered; raise StarshipAuthError if we cannot."""
        if self.mode != "password":
            what = "the API token was refused" if self.mode == "token" else "no credentials"
            raise StarshipAuthError(self.conn_id, method, route, refused.status_code, what)
        if self.cache is None:
            self._login(refused, secrets)
            return
        with self.cache.login_lock():
            # Another task may have logged in while this one waited for the lock.
            entry = self.cache.load()
            if entry and entry.get("kind") == "refused":
                raise StarshipAuthError(
                    self.conn_id, entry.get("method", "POST"), entry.get("route", "/login/"), entry.get("status"),
                    "this login and password were refused moments ago (not tried again, to spare the "
                    "server's login limit)",
                )
            if self.use_cached(entry):
                return
            try:
                self._login(refused, secrets)
            except StarshipRateLimitedError:
                raise
            except StarshipAuthError as err:
                # Only a clear "wrong credentials" is remembered, never a server that was briefly
                # unwell (a 502 from a restarting webserver must not lock tasks out).
                if err.method == "POST" and err.status in REFUSED_LOGIN_STATUSES:
                    self.cache.save({"kind": "refused", "method": err.method, "route": err.route,
                                     "status": err.status})
                raise
            self._remember()

    def _remember(self) -> None:
        if self.credentials.server == "af2-session":
            entry = {"kind": "af2-session", "cookies": self.credentials.cookies.get_dict()}
        else:
            entry = {"kind": "af3-jwt", "token": self.credentials.token}
        self.cache.save(entry)
        self._cache_entry = entry

    def _login(self, refused: requests.Response, secrets: Iterable[str]) -> None:
        if self.login_redirect(refused):
            self._airflow2_login()
        else:
            self._airflow3_token(secrets)

    def _airflow2_login(self) -> None:
        """Log in to an Airflow 2 webserver through its form; the session cookie does the rest."""
        conn = self.hook.connection
        self.credentials.cookies.clear()
        page = self.send("GET", "login/")
        match = _CSRF[0].search(page.text) or _CSRF[1].search(page.text)
        if page.status_code != 200 or not match:
            raise StarshipAuthError(
                self.conn_id, "GET", "/login/", page.status_code,
                "the server redirected to /login/ but no Airflow 2 login form was found there",
            )
        self.count += 1
        self.hook.log.info("Logging in to Airflow 2 webserver of connection '%s' as '%s'", self.conn_id, conn.login)
        answer = self.send(
            "POST", "login/",
            data={"username": conn.login, "password": conn.password or "", "csrf_token": match.group(1)},
            headers={"Referer": self.hook.url_from_endpoint("login/")},
        )
        if answer.status_code == 429:
            raise StarshipRateLimitedError(self.conn_id, "POST", "/login/", 429, "login rate limit")
        if not (answer.status_code in REDIRECTS and "/login" not in answer.headers.get("Location", "")):
            raise StarshipAuthError(self.conn_id, "POST", "/login/", answer.status_code,
                                    "Airflow 2 web login refused the username or password")
        self.credentials.server = "af2-session"

    def _airflow3_token(self, secrets: Iterable[str]) -> None:
        """Exchange login and password for a JWT at an Airflow 3 api-server's ``/auth/token``."""
        conn = self.hook.connection
        self.credentials.token = None
        self.count += 1
        self.hook.log.info("Requesting an API token for connection '%s' as '%s'", self.conn_id, conn.login)
        answer = self.send("POST", "auth/token", json={"username": conn.login, "password": conn.password or ""})
        token = None
        if answer.status_code in (200, 201):
            try:
                token = answer.json().get("access_token")
            except ValueError:
                token = None
        if not token:
            raise StarshipAuthError(self.conn_id, "POST", "/auth/token", answer.status_code,
                                    response_detail(answer, secrets) or "no access_token in the answer")
        self.hook.add_secrets([token])
        self.credentials.token = token
        self.credentials.server = "af3-jwt"
