"""Small pieces the hook modules share: a streamed answer's body, a version's minor number."""

from __future__ import annotations

from collections.abc import Iterator

import requests

from starship_dags.exceptions import StarshipTransportError

CHUNK = 256 * 1024  # bytes of a log read at a time


def pieces(response: requests.Response) -> Iterator[bytes] | None:
    """A streamed answer's body in pieces (None for a 404); the connection is released at the end,
    or when the caller closes the iterator. A connection lost while reading is a transport error."""
    if response.status_code == 404:
        response.close()
        return None

    def read() -> Iterator[bytes]:
        try:
            yield from (piece for piece in response.iter_content(CHUNK) if piece)
        except requests.RequestException as err:
            raise StarshipTransportError("", "GET", response.request.path_url if response.request else "?", None,
                                         f"the body broke off: {type(err).__name__}") from None
        finally:
            response.close()

    return read()


def minor_number(version: str) -> int:
    """``"2.7.3"`` -> 7."""
    parts = str(version).split(".")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
