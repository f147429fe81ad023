"""List POSTs in byte-bounded batches: split on 413, and a refused row stands alone and is named.

Starship inserts a POSTed list in one statement. An Airflow 2 webserver refuses bodies over
``[webserver] allowed_payload_size`` (1 MiB by default) with 413, and one bad row (a duplicate, a
NOT NULL or foreign-key violation) fails the whole statement. :func:`post_list` sends bodies under
``max_batch_bytes``; a refused batch is halved until the refused row stands alone, so every other
row still goes in and the refused one is named in the result.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starship_dags.exceptions import (
    StarshipAuthError,
    StarshipError,
    StarshipPayloadTooLargeError,
    StarshipRateLimitedError,
    StarshipTransportError,
)

if TYPE_CHECKING:  # only the type: batching is the transport's client, not its part
    from starship_dags.hooks.transport import AirflowHttpHook

#: Below the Airflow 2 webserver's default ``allowed_payload_size`` of 1 MiB.
DEFAULT_MAX_BATCH_BYTES = 900_000


@dataclass
class PostResult:
    """What a list POST did: how many items went in, and each refused item with the reason."""

    sent: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    #: Items of a batch refused with 409 after an attempt whose answer was lost: that attempt may
    #: have stored them. The caller looks at the target to tell.
    uncertain: list[dict[str, Any]] = field(default_factory=list)
    #: With ``hold_tail``: how many items at the end were kept back, unsent (the last, partly filled batch).
    held: int = 0


def encode_item(item: dict[str, Any]) -> bytes:
    return json.dumps(item, default=str, ensure_ascii=False, separators=(",", ":")).encode()


def envelope(key: str, encoded: Sequence[bytes]) -> bytes:
    return b'{"' + key.encode() + b'": [' + b",".join(encoded) + b"]}"


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


def post_list(hook: AirflowHttpHook, endpoint: str, key: str, items: Sequence[dict[str, Any]], max_bytes: int, *,
              describe: Callable[[dict], str] | None = None, hold_tail: bool = False) -> PostResult:
    """POST ``{key: items}`` to ``endpoint`` in batches under ``max_bytes``, isolating bad items.

    A 413 halves the batch. Any other refusal of a batch (409, 400, Starship's own 500) halves it
    too, until the item the server refuses stands alone; it is reported by name in the result and
    every other item still goes in. Auth and transport errors are raised.

    ``hold_tail``: the last batch is not sent (``result.held`` counts its items), so that a caller
    writing a stream of pages can send it with the next page's items, in full bodies.
    """
    result = PostResult()
    batches = list(iter_byte_batches([encode_item(item) for item in items], max_bytes))
    if hold_tail and batches:
        result.held = len(batches.pop())
    for batch in batches:
        _post_batch(hook, endpoint, key, batch, describe, result)
    return result


def _post_batch(hook: AirflowHttpHook, endpoint: str, key: str, batch: list[bytes], describe,
                result: PostResult) -> None:
    try:
        hook.request("POST", endpoint, data=envelope(key, batch), headers={"Content-Type": "application/json"},
                     item=f"batch of {len(batch)}")
        result.sent += len(batch)
        return
    except (StarshipAuthError, StarshipTransportError, StarshipRateLimitedError):
        raise
    except StarshipError as err:
        if err.status is None or (err.status >= 500 and err.status != 500):
            raise
        if err.status == 409 and hook.attempts > 1:
            hook.log.warning("%s answered 409 for a batch of %d on attempt %d: an earlier attempt whose answer "
                             "was lost may have stored it; checking the target", endpoint, len(batch), hook.attempts)
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
            hook.log.info("%s answered 413 for %d items; splitting in two", endpoint, len(batch))
        else:
            hook.log.info("%s refused a batch of %d (HTTP %s); splitting it to find the item", endpoint, len(batch),
                          err.status)
    half = len(batch) // 2
    _post_batch(hook, endpoint, key, batch[:half], describe, result)
    _post_batch(hook, endpoint, key, batch[half:], describe, result)
