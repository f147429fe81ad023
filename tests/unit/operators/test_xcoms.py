"""XCom values compare as JSON; what is not JSON is marked."""

from __future__ import annotations

from starship_dags.operators.xcoms import _NOT_JSON, _decode, _same


def test_values_compare_as_json_and_non_json_is_marked():
    assert _same(b'{"a": 1, "b": 2}', b'{"b":2,"a":1}')
    assert not _same(b'{"a": 1}', b'{"a": 2}')
    assert _decode(b"\x80\x04pickled") is _NOT_JSON


def _xcom_task(mocker, listing):
    """The XCom task on DAG d with runs r1 and r2 planned, the source listing ``listing`` (or raising it)."""
    from starship_dags.operators.xcoms import XComsMigrationOperator
    from starship_dags.plan import DagPlan

    op = XComsMigrationOperator(task_id="xcoms", source_dags=[{"dag_id": "d"}], plans={"plans": {}}, concurrency=2)
    op.source_dag = {"dag_id": "d"}
    op.plan = DagPlan("d", idle=False, artifact_run_ids=["r1", "r2"], source_total=2)
    source, target = mocker.MagicMock(), mocker.MagicMock()
    source.airflow_major, target.airflow_major, source.serves_xcoms = 2, 2, True
    for hook in (source, target):
        hook.request_count = hook.api_calls = hook.write_count = 0
        hook.sibling.side_effect = (lambda same: lambda **_: same)(hook)
    if isinstance(listing, Exception):
        source.xcom_entries.side_effect = listing
    else:
        source.xcom_entries.return_value = listing
    target.xcom_entries.return_value = {}
    source.read_xcoms.side_effect = lambda *ti, keys=None: {k: b'"v"' for k in keys or ["return_value"]}
    op.__dict__.update(source_hook=source, target_hook=target)
    return op, source, target


def test_only_the_task_instances_a_listing_found_are_read_and_written(mocker):
    from starship_dags.report import Summary

    op, source, target = _xcom_task(mocker, {("r1", "a", -1): ["return_value", "second"], ("r2", "b", 3): ["x"]})
    summary = Summary(resource="xcoms", dag_id="d")
    op.copy_all(summary)
    assert sorted(call.args for call in source.read_xcoms.call_args_list) == [("d", "r1", "a", -1), ("d", "r2", "b", 3)]
    assert not source.get_task_instances.called  # no task instance read, none probed
    assert not target.get_xcoms.called  # the target listed none: nothing to compare
    assert summary.created == 3 and target.create_xcom.call_count == 3
    assert summary.notes[0].startswith("listed through the REST API")


def test_where_the_rest_api_cannot_list_every_finished_task_instance_is_asked(mocker):
    from starship_dags.exceptions import StarshipPermissionError
    from starship_dags.report import Summary

    op, source, target = _xcom_task(mocker, StarshipPermissionError("s", "GET", "/api/v1/…/xcomEntries", 403, "no"))
    source.get_task_instances.return_value = {"dag_run_count": 2, "task_instances": [
        {"dag_id": "d", "run_id": r, "task_id": "t", "map_index": -1, "state": "success"} for r in ("r1", "r2")]}
    target.get_xcoms.return_value = []
    summary = Summary(resource="xcoms", dag_id="d")
    op.copy_all(summary)
    assert source.read_xcoms.call_count == 2 and target.get_xcoms.call_count == 2  # one probe per task instance
    assert summary.created == 2 and "XComs not listed (no)" in summary.notes[0]
