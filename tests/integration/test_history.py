"""DAG history through the real migration DAG: Airflow 2.11 source (scheduler-made and bulk runs)
into Airflow 2.11 and 3.3 targets."""

from __future__ import annotations

import json
import os
import re
import signal
import time

from starship_dags.operators.start import dag_weight, deal
from starship_dags.translate import COLUMNS, DAG_RUN, SENT_WHEN_NULL, TASK_INSTANCE
from starship_dags.translate import HISTORY as TI_HISTORY
from tests.integration import history_seed, rig
from tests.integration.history_seed import BULK_RUNS, QUEUED_RUN, REAL_DAGS
from tests.integration.parity import (
    ALL_DAGS,
    HISTORY,
    assert_no_duplicates_or_orphans,
    assert_parity,
    runs_of,
)


def dag_summaries(result: rig.DagTestResult, dag_id: str) -> list[dict]:
    return [s for s in result.summaries.values() if s.get("dag_id") == dag_id]


def test_full_history_then_idle_rerun(history_target):
    source, target = history_target
    started = time.monotonic()
    first = rig.run_migration_dag(target, source, {**HISTORY, "validate": True})
    elapsed = time.monotonic() - started
    assert first.run_state == "success", first.explain()
    rows = sum(s["created"] for s in first.summaries.values())
    print(f"\nfull history into Airflow {target.env.version}: {rows} rows in {elapsed:.0f} s")
    bulk_runs = [s for s in dag_summaries(first, "bulk_a") if s["resource"] == "dag_runs"][0]
    assert bulk_runs["skipped"] == 1 and "queued" in bulk_runs["skipped_items"][0]
    # the DAGs were dealt out over the default 4 history tasks by the rows each has to copy: the run
    # counts of Starship's DAG list, and task instances per run read off the source's newest runs
    # of each DAG with many runs (how is the unit tests' business); each task labelled in the UI
    # with its DAGs
    run_id = target.sql("SELECT max(run_id) FROM task_instance WHERE task_id = 'history.dag_runs'")[0][0]
    labels = target.sql("SELECT map_index, rendered_map_index FROM task_instance WHERE run_id = %s "
                        "AND task_id = 'history.dag_runs' ORDER BY map_index", (run_id,))
    listed = {d["dag_id"]: d.get("dag_run_count") for d in source.client().get("dags")}
    dealt = sorted(ALL_DAGS)
    assert {d: listed[d] for d in dealt} == {d: len(runs_of(source, d, finished_only=False)) for d in dealt}
    per_run = {spec["dag_id"]: spec["tasks_per_run"]
               for batch in rig.xcom_value(target, "starship_migration", run_id, "start") for spec in batch}
    assert per_run == {d: float(len(history_seed.BULK_TASKS)) if d in history_seed.BULK_DAGS else None
                       for d in dealt}, per_run  # the scheduler's DAGs have too few runs to be read
    expected = deal([{"dag_id": d} for d in dealt], [dag_weight(listed[d], per_run[d]) for d in dealt], 4)
    assert labels == [(index, ", ".join(s["dag_id"] for s in batch)) for index, batch in enumerate(expected)], labels
    assert_parity(source, target)
    assert_no_duplicates_or_orphans(source, target)
    retry = [s for s in dag_summaries(first, "hist_retry") if s["resource"] == "task_instance_history"][0]
    assert retry["created"] == 2  # the failed first try of each scheduled run
    # validation read both sides again: every DAG's runs and task instances counted equal
    for dag_id in ALL_DAGS:
        check = [s for s in dag_summaries(first, dag_id) if s["resource"] == "validation"]
        assert len(check) == 1 and check[0]["failed"] == 0 and check[0]["unchanged"] == 2, check
        counts = [re.fullmatch(r"(runs|task instances): source (\d+), target (\d+)", n) for n in check[0]["notes"]]
        assert all(m and m[2] == m[3] for m in counts), check[0]["notes"]
    assert f"runs: source {history_seed.BULK_RUNS - 1}, target {history_seed.BULK_RUNS - 1}" in [s for s in dag_summaries(first, "bulk_a")
                                                  if s["resource"] == "validation"][0]["notes"]

    if target.major >= 3:
        missing_versions = target.sql(
            "SELECT count(*) FROM task_instance WHERE dag_id = ANY(%s) AND dag_version_id IS NULL", (list(ALL_DAGS),))
        assert missing_versions == [(0,)]
        assert target.sql(
            "SELECT count(*) FROM task_instance_history WHERE dag_id = ANY(%s) AND dag_version_id IS NULL",
            (list(ALL_DAGS),)) == [(0,)]
        client = target.client()
        for dag_id in REAL_DAGS:
            answer = client.session.get(f"{target.url}/api/v2/dags/{dag_id}/dagRuns", timeout=60)
            assert answer.status_code == 200, answer.text[:500]
            assert answer.json()["total_entries"] == len(runs_of(source, dag_id))
            answer = client.session.get(f"{target.url}/api/v2/dags/{dag_id}/dagRuns/~/taskInstances", timeout=60)
            assert answer.status_code == 200, answer.text[:500]

    again = rig.run_migration_dag(target, source, HISTORY)
    assert again.run_state == "success", again.explain()
    for summary in again.summaries.values():
        assert summary["target_writes"] == 0 and summary["created"] == 0, summary
    for dag_id in ALL_DAGS:
        calls = sum(s["source_api_calls"] for s in dag_summaries(again, dag_id))
        assert calls <= 2, (dag_id, calls)
    assert_parity(source, target)
    # XComs, logs and validation are not selected: the start skipped those tasks before the group
    # was expanded, so they never waited (one per batch) beside the copy
    later = target.sql(
        "SELECT c.task_id, c.map_index, c.state, c.end_date <= s.end_date FROM task_instance c "
        "JOIN task_instance s ON s.dag_id = c.dag_id AND s.run_id = c.run_id AND s.task_id = 'start' "
        "WHERE c.run_id = (SELECT run_id FROM dag_run WHERE dag_id = 'starship_migration' AND start_date IS NOT NULL "
        "ORDER BY start_date DESC LIMIT 1) AND c.dag_id = 'starship_migration' AND c.task_id LIKE 'history.%%' "
        "AND c.task_id <> 'history.dag_runs' ORDER BY 1")
    assert [row[:3] for row in later] == [(f"history.{t}", -1, "skipped") for t in ("validate", "xcoms_logs_notes")], later
    if target.major == 2:  # on Airflow 2 by the start itself, directly, before it ended
        assert all(row[3] for row in later), later


def test_columns_left_out_when_null_are_null_on_the_target(target):
    """A request leaves out the columns that are NULL in all its rows. The target then stores NULL
    unless the column has a server default: every nullable column that has one must be sent."""
    for kind in (DAG_RUN, TASK_INSTANCE, TI_HISTORY):
        with_default = {row[0] for row in target.sql(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
            "AND table_name = %s AND is_nullable = 'YES' AND column_default IS NOT NULL", (kind,))}
        sent = set(COLUMNS[(kind, target.major)])
        assert sent & with_default <= SENT_WHEN_NULL, (kind, sent & with_default - SENT_WHEN_NULL)


def test_killed_mid_run_then_rerun(history_target):
    source, target = history_target
    proc = rig.start_migration_dag(target, source, HISTORY)
    deadline = time.monotonic() + 600
    killed_at = None
    while time.monotonic() < deadline and proc.poll() is None:
        copied = target.sql("SELECT count(*) FROM task_instance WHERE dag_id = ANY(%s)", (list(history_seed.BULK_DAGS),))[0][0]
        if copied > 0:
            os.killpg(proc.pid, signal.SIGKILL)
            killed_at = copied
            break
        time.sleep(0.2)
    proc.wait(timeout=60)
    assert killed_at is not None, "the migration finished before it could be killed"
    result = rig.run_migration_dag(target, source, HISTORY)
    assert result.run_state == "success", result.explain()
    assert_parity(source, target)
    assert_no_duplicates_or_orphans(source, target)


def test_new_source_runs_are_picked_up_incrementally(history_target):
    source, target = history_target
    assert rig.run_migration_dag(target, source, HISTORY).run_state == "success"
    source.python(history_seed.SCRIPT, stdin=json.dumps({
        "dags": ["bulk_b"], "first": 10_000, "runs": 5, "tasks": list(history_seed.BULK_TASKS)}))
    source.sql("UPDATE dag_run SET state = 'success', start_date = now(), end_date = now() "
               "WHERE dag_id = 'bulk_a' AND state = 'queued'")
    later = rig.run_migration_dag(target, source, HISTORY)
    assert later.run_state == "success", later.explain()
    by_dag = {dag_id: {s["resource"]: s for s in dag_summaries(later, dag_id)} for dag_id in ALL_DAGS}
    assert by_dag["bulk_b"]["dag_runs"]["created"] == 5
    assert by_dag["bulk_b"]["task_instances"]["created"] == 5 * len(history_seed.BULK_TASKS)
    assert by_dag["bulk_a"]["dag_runs"]["created"] == 1  # the run that was queued before
    assert by_dag["bulk_c"]["dag_runs"]["created"] == 0
    assert by_dag["bulk_c"]["dag_runs"]["source_api_calls"] == 1
    # only the new runs' task instances and retry history were read: a page or two, not the whole history
    assert by_dag["bulk_b"]["task_instances"]["source_api_calls"] <= 2
    assert by_dag["bulk_b"]["task_instance_history"]["source_api_calls"] <= 2
    assert_parity(source, target, dags=("bulk_a", "bulk_b"))
    assert_no_duplicates_or_orphans(source, target)
    source.sql("DELETE FROM dag_run WHERE dag_id = 'bulk_b' AND execution_date >= '2024-01-01'")
    source.sql("UPDATE dag_run SET state = 'queued', start_date = NULL, end_date = NULL "
               "WHERE dag_id = 'bulk_a' AND run_id = %s", (f"scheduled__{_logical(QUEUED_RUN)}",))


def test_target_with_runs_already_and_a_clashing_logical_date(history_target):
    source, target = history_target
    partial = rig.run_migration_dag(target, source, {**HISTORY, "dag_ids": ["bulk_c"], "runs_limit": 7})
    assert partial.run_state == "success", partial.explain()
    assert [s["created"] for s in dag_summaries(partial, "bulk_c") if s["resource"] == "dag_runs"] == [7]
    clash_date = _logical(1000)
    column = "execution_date" if target.major == 2 else "logical_date"
    extra = ", run_after, span_status" if target.major >= 3 else ""
    values = ", %(d)s, 'not_started'" if target.major >= 3 else ""
    target.sql(
        f"INSERT INTO dag_run (dag_id, run_id, {column}, run_type, state, clear_number{extra}) "
        f"VALUES ('bulk_d', 'manual__target_own', %(d)s, 'manual', 'success', 0{values})",
        {"d": clash_date},
    )
    result = rig.run_migration_dag(target, source, HISTORY)
    assert result.run_state == "failed"
    runs = {s["dag_id"]: s for s in result.summaries.values() if s["resource"] == "dag_runs"}
    assert [f["item"] for f in runs["bulk_d"]["failures"]] == [f"run 'scheduled__{clash_date}'"]
    assert "manual__target_own" in runs["bulk_d"]["failures"][0]["reason"]
    assert (runs["bulk_c"]["unchanged"], runs["bulk_c"]["created"]) == (7, BULK_RUNS - 8), json.dumps(runs["bulk_c"])[:3000]
    assert_parity(source, target, skip_runs={f"scheduled__{clash_date}"})
    assert_no_duplicates_or_orphans(source, target)


def _logical(i: int) -> str:
    import datetime

    return (datetime.datetime(2023, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(hours=i)).isoformat()


def test_dag_not_parsed_on_the_target(history_target):
    source, target = history_target
    only = history_seed.SOURCE_ONLY_DAG_ID
    result = rig.run_migration_dag(target, source, {**HISTORY, "dag_ids": [only]})
    runs = [s for s in dag_summaries(result, only) if s["resource"] == "dag_runs"][0]
    on_target = target.sql("SELECT count(*) FROM dag_run WHERE dag_id = %s", (only,))[0][0]
    if target.major >= 3:
        assert result.run_state == "failed"
        assert runs["failures"][0]["item"] == f"DAG {only!r}"
        assert "not parsed on target" in runs["failures"][0]["reason"]
        assert on_target == 0  # no half-rows without a DAG version
    else:  # Airflow 2 has no DAG versions: the history migrates
        assert result.run_state == "success", result.explain()
        assert on_target == 3
    target.sql("DELETE FROM dag_run WHERE dag_id = %s", (only,))
