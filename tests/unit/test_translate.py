"""The Airflow 2 <-> 3 translation table, record by record."""

from __future__ import annotations

import uuid

import pytest

from starship_dags.translate import (
    COLUMNS,
    DAG_RUN,
    HISTORY,
    TASK_INSTANCE,
    stable_uuid7,
    translate,
    without_null_columns,
)

AF2_RUN = {
    "dag_id": "d", "run_id": "scheduled__2024-01-02T00:00:00+00:00", "execution_date": "2024-01-02 00:00:00+00:00",
    "run_type": "scheduled", "state": "success", "start_date": "2024-01-03 00:00:05+00:00",
    "end_date": "2024-01-03 00:01:00+00:00", "data_interval_start": "2024-01-02 00:00:00+00:00",
    "data_interval_end": "2024-01-03 00:00:00+00:00", "queued_at": "2024-01-03 00:00:01+00:00",
    "creating_job_id": 17, "external_trigger": False, "conf": {"ü": [1]}, "dag_hash": "abc",
    "last_scheduling_decision": None, "clear_number": 0,
}
AF2_TI = {
    "dag_id": "d", "run_id": AF2_RUN["run_id"], "task_id": "t", "map_index": 2, "try_number": 2, "max_tries": 1,
    "state": "success", "start_date": "2024-01-03 00:00:10+00:00", "job_id": 99, "trigger_id": 5,
    "queued_by_job_id": 3, "pool": "p", "pool_slots": 1, "executor_config": "gAR9lC4=", "rendered_map_index": "x",
}


def test_airflow2_run_into_airflow3():
    row = translate(DAG_RUN, AF2_RUN, 2, 3)
    # every column but those the Airflow 2 run has no value for (the target stores its default)
    assert set(row) == set(COLUMNS[(DAG_RUN, 3)]) - {"triggering_user_name", "partition_key", "partition_date"}
    assert row["logical_date"] == AF2_RUN["execution_date"]
    assert row["run_after"] == AF2_RUN["data_interval_end"]  # scheduled: the end of the interval
    assert row["triggered_by"] == "TIMETABLE"
    assert row["creating_job_id"] is None and "dag_hash" not in row and "external_trigger" not in row
    assert row["conf"] == {"ü": [1]}


@pytest.mark.parametrize(
    ("run_type", "expected_type", "triggered_by"),
    [("manual", "manual", None), ("dataset_triggered", "asset_triggered", "ASSET"), ("backfill", "backfill", "BACKFILL")],
)
def test_run_types_and_triggers(run_type, expected_type, triggered_by):
    row = translate(DAG_RUN, {**AF2_RUN, "run_type": run_type}, 2, 3)
    assert (row["run_type"], row["triggered_by"]) == (expected_type, triggered_by)
    if run_type == "manual":
        assert row["run_after"] == AF2_RUN["execution_date"]


def test_airflow3_run_into_airflow2():
    af3 = translate(DAG_RUN, AF2_RUN, 2, 3)
    af3.update(run_type="asset_triggered", triggered_by="asset", logical_date=None)
    row = translate(DAG_RUN, af3, 3, 2)
    assert set(row) == set(COLUMNS[(DAG_RUN, 2)]) - {"dag_hash"}
    assert row["run_type"] == "dataset_triggered"
    assert row["execution_date"] == af3["run_after"]  # Airflow 2 needs a logical date
    assert row["external_trigger"] is True


def test_airflow2_task_instance_into_airflow3_gets_a_stable_uuid7():
    first = translate(TASK_INSTANCE, AF2_TI, 2, 3)
    again = translate(TASK_INSTANCE, dict(AF2_TI), 2, 3)
    ident = uuid.UUID(first["id"])
    assert ident.version == 7 and first["id"] == again["id"]
    assert "job_id" not in first and first["trigger_id"] is None and first["queued_by_job_id"] is None
    assert first["executor_config"] is None and first["rendered_map_index"] == "x"
    other = translate(TASK_INSTANCE, {**AF2_TI, "map_index": 3}, 2, 3)
    assert other["id"] != first["id"]


def test_history_rows_get_their_own_ids():
    ti = translate(TASK_INSTANCE, AF2_TI, 2, 3)
    tries = [translate(HISTORY, {**AF2_TI, "try_number": n}, 2, 3) for n in (1, 2)]
    ids = {ti["id"], *(t["task_instance_id"] for t in tries)}
    assert len(ids) == 3


def test_airflow3_ids_are_kept_between_airflow3_servers():
    row = translate(TASK_INSTANCE, {**AF2_TI, "id": "0190c0de-0000-7000-8000-000000000001", "dag_version_id": "v"}, 3, 3)
    assert row["id"] == "0190c0de-0000-7000-8000-000000000001" and "dag_version_id" not in row


def test_airflow3_task_instance_into_airflow2_sends_only_its_columns():
    af3 = translate(TASK_INSTANCE, AF2_TI, 2, 3)
    row = translate(TASK_INSTANCE, {**af3, "span_status": "ended", "dag_version_id": "v"}, 3, 2)
    assert set(row) == set(COLUMNS[(TASK_INSTANCE, 2)]) & set(af3)
    assert "id" not in row and "span_status" not in row and "job_id" not in row  # Airflow 3 has no job_id


def test_a_column_the_source_lacks_is_left_out_and_a_null_one_is_sent():
    row = translate(TASK_INSTANCE, {**AF2_TI, "next_method": None}, 2, 2)
    assert "next_method" in row and row["next_method"] is None
    assert "next_kwargs" not in row and "task_display_name" not in row
    # filled by a rule although the source lacks them
    assert (row["executor_config"], row["pool_slots"]) == (None, 1)
    assert set(row) <= set(COLUMNS[(TASK_INSTANCE, 2)])


def test_a_column_null_in_every_row_of_a_request_is_left_out():
    rows = [translate(TASK_INSTANCE, {**AF2_TI, "task_id": f"t{n}", "next_method": None, "hostname": None,
                                      "max_tries": None, "rendered_map_index": "x" if n == 2 else None}, 2, 2)
            for n in range(3)]
    rows = without_null_columns(rows)
    assert len({tuple(row) for row in rows}) == 1  # one column list for the whole request
    columns = set(rows[0])
    assert not columns & {"next_method", "hostname", "job_id", "trigger_id", "queued_by_job_id"}  # NULL in all
    assert "rendered_map_index" in columns and rows[0]["rendered_map_index"] is None  # set in one row
    # the target would not store NULL without them: Starship's executor_config, max_tries' server default
    assert {"executor_config", "max_tries"} <= columns and rows[0]["max_tries"] is None
    assert without_null_columns([]) == []


def test_uuid7_time_prefix_follows_the_start():
    early = stable_uuid7(("a",), "2020-01-01 00:00:00+00:00")
    late = stable_uuid7(("a",), "2024-01-01 00:00:00+00:00")
    assert early < late
    assert stable_uuid7(("a",), None).startswith("00000000-0000-7")
