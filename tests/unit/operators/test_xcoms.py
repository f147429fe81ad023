"""XCom values compare as JSON; what is not JSON is marked."""

from __future__ import annotations

from starship_dags.operators.xcoms import _NOT_JSON, _decode, _same


def test_values_compare_as_json_and_non_json_is_marked():
    assert _same(b'{"a": 1, "b": 2}', b'{"b":2,"a":1}')
    assert not _same(b'{"a": 1}', b'{"a": 2}')
    assert _decode(b"\x80\x04pickled") is _NOT_JSON
