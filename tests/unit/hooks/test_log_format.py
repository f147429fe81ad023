"""Task logs as a REST API renders them, back to the log: header groups cut wherever chunks split them."""

from __future__ import annotations

import json

from starship_dags.hooks.log_format import strip_ndjson_header as _strip_ndjson_header
from starship_dags.hooks.log_format import strip_text_header as _strip_text_header


def pieces(data: bytes, size: int):
    return iter([data[i:i + size] for i in range(0, len(data), size)])


def test_text_header_is_cut_wherever_the_chunks_split_it():
    body = (b"127.0.0.1\n INFO - ::group::Log message source details\n*** Found local files:\n"
            b"***   * /x/attempt=1.log\n INFO - ::endgroup::\n[2024] INFO - hello\n[2024] INFO - bye\n")
    for size in (1, 7, 50, len(body)):
        assert b"".join(_strip_text_header(pieces(body, size))) == b"[2024] INFO - hello\n[2024] INFO - bye\n"


def test_text_without_header_is_kept_whole():
    assert b"".join(_strip_text_header(iter([b"plain log\n"]))) == b"plain log\n"


def test_ndjson_header_group_is_dropped_and_records_kept():
    records = [{"event": "::group::Log message source details", "sources": ["/a"]}, {"event": "::endgroup::"},
               {"event": "first", "timestamp": "2024-01-01T00:00:00Z"}, {"event": "second"}]
    body = b"".join(json.dumps(r).encode() + b"\n" for r in records)
    for size in (3, 40, len(body)):
        lines = b"".join(_strip_ndjson_header(pieces(body, size))).splitlines()
        assert [json.loads(line)["event"] for line in lines] == ["first", "second"]


def test_ndjson_without_header_keeps_the_first_record():
    body = json.dumps({"event": "only"}).encode()
    assert json.loads(b"".join(_strip_ndjson_header(iter([body])))) == {"event": "only"}
