"""Typed errors raised by :class:`~starship_dags.hooks.starship.StarshipHook`.

Every message names the connection id, the HTTP method, the route and the status, so a user
reading a task log knows which side failed and why. Messages never carry a request body, a
password, a token or a secret value: the hook builds them from the server's short ``error``
text only, with SQL parameters and echoed request arguments cut off and known secrets redacted.
"""

from __future__ import annotations

from starship_dags.compat import AirflowException


class StarshipError(AirflowException):
    """A Starship API call failed."""

    hint = ""

    def __init__(
        self,
        conn_id: str,
        method: str,
        route: str,
        status: int | None,
        detail: str = "",
        *,
        item: str | None = None,
    ) -> None:
        self.conn_id = conn_id
        self.method = method
        self.route = route
        self.status = status
        self.detail = detail
        self.item = item
        status_text = f"HTTP {status}" if status is not None else "no HTTP response"
        parts = [f"{method} {route} on connection '{conn_id}' failed: {status_text}"]
        if item:
            parts.append(f"item {item}")
        if detail:
            parts.append(detail)
        if self.hint:
            parts.append(self.hint)
        super().__init__(" - ".join(parts))


class StarshipTLSError(StarshipError):
    hint = (
        "the server's TLS certificate could not be verified: name the CA bundle that signed it in the "
        "connection's extra 'verify' (a path), or, only on a trusted network, set 'verify' to false"
    )


class StarshipAuthError(StarshipError):
    hint = (
        "check the login and password (or API token) of this connection, and that the user may "
        "read the Airflow configuration (Starship requires admin-like rights)"
    )


class StarshipPermissionError(StarshipAuthError):
    hint = "the credentials were accepted but the user lacks permission for this route"


class StarshipNotFoundError(StarshipError):
    pass


class StarshipConflictError(StarshipError):
    """409: a duplicate, or a NOT NULL / foreign-key violation (Starship reports all as 409)."""


class StarshipPayloadTooLargeError(StarshipError):
    hint = "the request body exceeds the server's limit ([webserver] allowed_payload_size on Airflow 2)"


class StarshipBadRequestError(StarshipError):
    pass


class StarshipServerError(StarshipError):
    pass


class StarshipRateLimitedError(StarshipError):
    hint = "the server kept answering 429 Too Many Requests after all retries"


class StarshipTransportError(StarshipError):
    """No usable HTTP response: connection refused or reset, timeout, truncated body."""

    hint = "the server could not be reached or did not answer in time, even after retries"


class StarshipNotInstalledError(StarshipNotFoundError):
    hint = (
        "the Starship plugin does not answer at this URL: install astronomer-starship on that "
        "Airflow and check the connection's host (the Airflow URL, including any path prefix)"
    )


_BY_STATUS: dict[int, type[StarshipError]] = {
    400: StarshipBadRequestError,
    401: StarshipAuthError,
    403: StarshipPermissionError,
    404: StarshipNotFoundError,
    409: StarshipConflictError,
    413: StarshipPayloadTooLargeError,
    422: StarshipBadRequestError,
    429: StarshipRateLimitedError,
}


def error_class_for(status: int) -> type[StarshipError]:
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return StarshipServerError
    return StarshipError
