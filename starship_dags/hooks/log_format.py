"""Task logs as an Airflow REST API renders them, back to the log itself.

Both majors put a "log source details" group before the log (where the file was read from); it
describes the source's storage, not the task, so it is left out of the copy. Airflow 2 renders
plain text; Airflow 3 newline-delimited JSON records. Both are read in pieces, never whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

_TEXT_HEADER_END = b" INFO - ::endgroup::\n"
_TEXT_GROUP = b"::group::Log message source details"
_MAX_TEXT_HEADER = 1024 * 1024  # no header in the first 1 MB: it is all log


def _text_header_end(head: bytes, final: bool) -> int | None:
    """Where the log starts in ``head`` (None: not known until more is read). Airflow 2.8+ renders
    a host line and a "log source details" group; 2.7 a host line and ``***`` lines."""
    if _TEXT_GROUP in head[:4096]:
        end = head.find(_TEXT_HEADER_END)
        return end + len(_TEXT_HEADER_END) if end >= 0 else (len(head) if final else None)
    lines = head.split(b"\n")
    if len(lines) < 3 and not final:
        return None  # the host line and the next are not both complete yet
    if len(lines) < 2 or not lines[1].startswith(b"***"):
        return 0 if len(lines) < 2 or _TEXT_GROUP[:9] not in lines[1] else None
    position = len(lines[0]) + 1
    for number, line in enumerate(lines[1:], start=1):
        complete = number < len(lines) - 1 or final
        if not complete:
            return None
        if not line.startswith(b"***"):
            return position
        position += len(line) + 1
    return len(head)


def strip_text_header(body: Iterator[bytes]) -> Iterator[bytes]:
    """Airflow 2's rendered log: a host line and where the file was read from, then the log."""
    head: bytes | None = b""
    try:
        for chunk in body:
            if head is None:
                yield chunk
                continue
            head += chunk
            end = _text_header_end(head, final=False)
            if end is not None:
                rest = head[end:]
                head = None
                if rest:
                    yield rest
            elif len(head) > _MAX_TEXT_HEADER:
                yield head
                head = None
        if head:
            yield head[_text_header_end(head, final=True) or 0:]
    finally:
        _close(body)


def strip_ndjson_header(body: Iterator[bytes]) -> Iterator[bytes]:
    """Airflow 3's records, one JSON object per line, without the "log source details" group."""
    pending, in_header = b"", None
    try:
        for chunk in body:
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if in_header is not False and line.strip():
                    event = _event_of(line)
                    if in_header is None:
                        in_header = event == "::group::Log message source details"
                        if in_header:
                            continue
                        in_header = False
                    elif in_header:
                        if event == "::endgroup::":
                            in_header = False
                        continue
                yield line + b"\n"
        if pending.strip():
            yield pending + b"\n"
    finally:
        _close(body)


def _close(body: Iterator[bytes]) -> None:
    close = getattr(body, "close", None)
    if close:  # a generator over an HTTP answer: release the connection
        close()


def _event_of(line: bytes) -> str | None:
    try:
        return json.loads(line).get("event")
    except (ValueError, AttributeError):
        return None
