"""XCom values compare as JSON; what is not JSON is marked."""

from __future__ import annotations

from starship_dags.operators.xcoms import _NOT_JSON, _decode, _same


def test_values_compare_as_json_and_non_json_is_marked():
    assert _same(b'{"a": 1, "b": 2}', b'{"b":2,"a":1}')
    assert not _same(b'{"a": 1}', b'{"a": 2}')
    assert _decode(b"\x80\x04pickled") is _NOT_JSON


def _xcom_task(mocker, listing):
    """The artifacts task with XComs only, on DAG d with runs r1 and r2 planned, the source listing
    ``listing`` (or raising it)."""
    from tests.unit.operators.test_artifacts import artifacts_task

    op, source, target = artifacts_task(mocker, kinds=["xcoms"])
    source.serves_xcoms = True
    if isinstance(listing, Exception):
        source.xcom_entries.side_effect = listing
    else:
        source.xcom_entries.return_value = listing
    target.xcom_entries.return_value = {}
    source.read_xcoms.side_effect = lambda *ti, keys=None: {k: b'"v"' for k in keys or ["return_value"]}
    return op, source, target


def _copy(op):
    from starship_dags.operators.xcoms import XComCopier
    from starship_dags.report import Summary

    summary = Summary(resource="xcoms", dag_id="d")
    op.run_jobs([XComCopier(op, summary, op.lock)])
    return summary


def test_only_the_task_instances_a_listing_found_are_read_and_written(mocker):
    op, source, target = _xcom_task(mocker, {("r1", "a", -1): ["return_value", "second"], ("r2", "b", 3): ["x"]})
    summary = _copy(op)
    assert sorted(call.args for call in source.read_xcoms.call_args_list) == [("d", "r1", "a", -1), ("d", "r2", "b", 3)]
    assert not source.get_task_instances.called  # no task instance read, none probed
    assert not target.get_xcoms.called  # the target listed none: nothing to compare
    assert summary.created == 3 and target.create_xcom.call_count == 3
    assert summary.notes[0].startswith("listed through the REST API")


def test_where_the_rest_api_cannot_list_every_finished_task_instance_is_asked(mocker):
    from starship_dags.exceptions import StarshipPermissionError
    op, source, target = _xcom_task(mocker, StarshipPermissionError("s", "GET", "/api/v1/…/xcomEntries", 403, "no"))
    source.get_task_instances.return_value = {"dag_run_count": 2, "task_instances": [
        {"dag_id": "d", "run_id": r, "task_id": "t", "map_index": -1, "state": "success"} for r in ("r1", "r2")]}
    target.get_xcoms.return_value = []
    summary = _copy(op)
    assert source.read_xcoms.call_count == 2 and target.get_xcoms.call_count == 2  # one probe per task instance
    assert summary.created == 2 and "XComs not listed (no)" in summary.notes[0]
