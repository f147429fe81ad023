"""XComs and task logs of the scheduler-made runs, from the Airflow 2.11 source into both targets.

What the source's scheduler wrote (XCom rows, one log file per try) is compared with what the
target gives back: XCom bytes (Airflow 2) or values through the REST API (Airflow 3), and log
text read back through each side's own REST log route.
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest

from tests.integration import rig
from tests.integration.history_seed import REAL_DAGS
from tests.integration.parity import reset_history

ARTIFACTS = {"resources": ["dag_history", "xcoms", "task_logs"], "dag_ids": list(REAL_DAGS)}
HEADER_END = " INFO - ::endgroup::"
NO_MAP_INDEX = "file name without a map index"


def source_xcoms(server: rig.AirflowServer) -> dict[tuple, object]:
    rows = server.sql("SELECT dag_id, run_id, task_id, map_index, key, value FROM xcom WHERE dag_id = ANY(%s)",
                      (list(REAL_DAGS),))
    return {tuple(r[:5]): json.loads(bytes(r[5])) for r in rows}


def target_xcom(server: rig.AirflowServer, key: tuple) -> object:
    dag_id, run_id, task_id, map_index, name = key
    if server.major == 2:
        rows = server.sql("SELECT value FROM xcom WHERE dag_id = %s AND run_id = %s AND task_id = %s "
                          "AND map_index = %s AND key = %s", key)
        return json.loads(bytes(rows[0][0])) if rows else None
    route = (f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}/taskInstances/"
             f"{quote(task_id, safe='')}/xcomEntries/{quote(name, safe='')}")
    answer = server.client().session.get(server.url + route, params={"map_index": map_index}, timeout=60)
    return answer.json()["value"] if answer.status_code == 200 else None


def finished_tries(server: rig.AirflowServer) -> list[tuple]:
    rows = server.sql("SELECT dag_id, run_id, task_id, map_index, try_number FROM task_instance "
                      "WHERE dag_id = ANY(%s) AND state IN ('success', 'failed') AND try_number > 0",
                      (list(REAL_DAGS),))
    return [(*r[:4], t) for r in rows for t in range(1, r[4] + 1)]


def log_lines(server: rig.AirflowServer, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int):
    """The log as the server's own REST API renders it, without the "source details" group: its
    non-empty lines (Airflow 2 text) or the text of its records (Airflow 3)."""
    prefix = "/api/v1" if server.major == 2 else "/api/v2"
    route = (f"{prefix}/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}/taskInstances/"
             f"{quote(task_id, safe='')}/logs/{try_number}")
    answer = server.client().session.get(
        server.url + route, params={"full_content": "true", "map_index": map_index}, timeout=120,
        headers={"Accept": "text/plain" if server.major == 2 else "application/json"})
    assert answer.status_code == 200, (route, answer.status_code, answer.text[:300])
    if server.major == 2:
        text = answer.content.decode("utf-8")  # Airflow 2 names no charset: requests would guess Latin-1
        if "::group::Log message source details" in text.split("\n", 2)[1]:  # 2.10+: the "source details" group
            lines = text.split(HEADER_END, 1)[1].splitlines()
        else:  # Airflow 2.7 to 2.9: a host line and "***" lines saying where the file was found
            lines = text.splitlines()[1:]
            assert lines and lines[0].startswith("***"), text[:500]
            while lines and lines[0].startswith("***"):
                lines.pop(0)
        return [line for line in lines if line.strip()]
    records = answer.json()["content"]
    ends = [i for i, r in enumerate(records) if r.get("event") == "::endgroup::"]
    body = records[ends[0] + 1:] if ends else records
    return [str(r.get("event")) for r in body if str(r.get("event") or "").strip()]


def summaries_of(result: rig.DagTestResult, kind: str) -> list[dict]:
    """The per-DAG summaries of one kind of artifact (``xcoms`` or ``task_logs``)."""
    return [summary for label, summary in result.summaries.items()
            if label.startswith("history.xcoms_logs_notes") and summary["resource"] == kind]


def log_notes(result: rig.DagTestResult) -> list[str]:
    return [note for summary in summaries_of(result, "task_logs") for note in summary["notes"]]


def logs_named(result: rig.DagTestResult, reason: str) -> set[str]:
    return {item.split(" (", 1)[0] for summary in summaries_of(result, "task_logs")
            for item in summary["skipped_items"] if reason in item}


def artifact_totals(result: rig.DagTestResult, kind: str) -> dict[str, int]:
    totals: dict[str, int] = {}
    for summary in summaries_of(result, kind):
        for outcome in ("created", "updated", "unchanged", "skipped", "failed"):
            totals[outcome] = totals.get(outcome, 0) + summary[outcome]
    return totals


def test_xcoms_and_logs_of_scheduler_runs(history_target):
    source, target = history_target
    expected_xcoms = source_xcoms(source)
    tries = finished_tries(source)
    assert len(expected_xcoms) >= 15 and any(k[3] >= 0 for k in expected_xcoms)  # mapped ones included
    assert any(t[4] == 2 for t in tries)  # a retried task: both tries have logs

    first = rig.run_migration_dag(target, source, ARTIFACTS)
    assert first.run_state == "success", first.explain()
    notes = log_notes(first)
    assert notes and all("Starship /task_log" in n.split(",")[0] for n in notes), notes

    for key, value in expected_xcoms.items():
        assert target_xcom(target, key) == value, key
    assert artifact_totals(first, "xcoms")["created"] == len(expected_xcoms)

    # Airflow 3 reads logs of runs written through Starship with its oldest file name template,
    # which has no map index: those logs are named as skipped, never silently mixed up.
    # Airflow 2's log route cannot show mapped task instances of migrated runs at all (it needs the
    # run's task_map rows, which Starship does not carry: HTTP 500): their files are compared below.
    skipped = logs_named(first, NO_MAP_INDEX)
    compared = 0
    for dag_id, run_id, task_id, map_index, try_number in tries:
        name = f"log of {dag_id}/{run_id}/{task_id}" + (f"[{map_index}]" if map_index >= 0 else "") + f" try {try_number}"
        if map_index >= 0:
            if target.major == 3:
                assert name in skipped, name
            continue
        expected = log_lines(source, dag_id, run_id, task_id, map_index, try_number)
        assert expected, name
        assert log_lines(target, dag_id, run_id, task_id, map_index, try_number) == expected, name
        compared += 1
    assert compared >= 10
    if target.major == 2:  # Starship wrote the very bytes of each file, mapped ones included
        files = 0
        for path in (source.home / "logs").rglob("attempt=*.log"):
            relative = path.relative_to(source.home / "logs")
            if relative.parts[0].split("=", 1)[1] in REAL_DAGS:
                assert (target.home / "logs" / relative).read_bytes() == path.read_bytes(), relative
                files += 1
        assert files == len(tries)

    # A full comparison rerun looks at every XCom and log again: nothing is written or appended.
    xcom_rows = target.sql("SELECT count(*) FROM xcom WHERE dag_id = ANY(%s)", (list(REAL_DAGS),))
    sizes = {p: p.stat().st_size for p in (target.home / "logs").rglob("*.log") if "hist_" in str(p)}
    again = rig.run_migration_dag(target, source, {**ARTIFACTS, "full_comparison": True})
    assert again.run_state == "success", again.explain()
    for kind in ("xcoms", "task_logs"):
        totals = artifact_totals(again, kind)
        assert totals.get("created", 0) == totals.get("updated", 0) == 0, (kind, totals)
        assert totals["unchanged"] > 0, (kind, totals)
    assert target.sql("SELECT count(*) FROM xcom WHERE dag_id = ANY(%s)", (list(REAL_DAGS),)) == xcom_rows
    assert {p: p.stat().st_size for p in sizes} == sizes
    idle = rig.run_migration_dag(target, source, ARTIFACTS)
    assert idle.run_state == "success", idle.explain()
    assert sum(s["target_writes"] for s in idle.summaries.values()) == 0
    # Validation, not selected, was skipped by the start before the group was expanded.
    later = target.sql(
        "SELECT c.task_id, c.map_index, c.state FROM task_instance c "
        "WHERE c.run_id = (SELECT run_id FROM dag_run WHERE dag_id = 'starship_migration' AND start_date IS NOT NULL "
        "ORDER BY start_date DESC LIMIT 1) AND c.dag_id = 'starship_migration' AND c.task_id = 'history.validate'")
    assert later == [("history.validate", -1, "skipped")], later
    if target.major == 2:
        # Every DAG unchanged: each dag_runs marked its batch's artifacts task skipped itself,
        # directly, before it ended.
        copies = target.sql(
            "SELECT c.map_index, c.state, c.end_date <= r.end_date FROM task_instance c "
            "JOIN task_instance r ON r.dag_id = c.dag_id AND r.run_id = c.run_id AND r.map_index = c.map_index "
            "AND r.task_id = 'history.dag_runs' WHERE c.run_id = (SELECT run_id FROM dag_run "
            "WHERE dag_id = 'starship_migration' AND start_date IS NOT NULL ORDER BY start_date DESC LIMIT 1) "
            "AND c.dag_id = 'starship_migration' AND c.task_id = 'history.xcoms_logs_notes' ORDER BY 1")
        assert copies == [(index, "skipped", True) for index in range(len(REAL_DAGS))], copies


@pytest.mark.parametrize("target", ["2.11"], indirect=True, scope="session")
def test_logs_through_rest_api_of_a_non_astronomer_source(history_target):
    source, target = history_target
    source.astro_logs = False  # Starship's /task_log answers 409 there
    source.stop_web()
    source.start_web()
    try:
        conf = {"resources": ["dag_history", "task_logs"], "dag_ids": ["hist_retry"]}
        result = rig.run_migration_dag(target, source, conf)
    finally:
        source.astro_logs = True
        source.stop_web()
        source.start_web()
    assert result.run_state == "success", result.explain()
    notes = log_notes(result)
    assert notes and "REST API" in notes[0], notes
    tries = [t for t in finished_tries(source) if t[0] == "hist_retry"]
    assert len(tries) >= 3
    for ti in tries:
        assert log_lines(target, *ti) == log_lines(source, *ti), ti


@pytest.mark.parametrize("target", ["2.11"], indirect=True, scope="session")
def test_a_20_mb_log_streams_in_bounded_memory(history_target, capsys):
    source, target = history_target
    run_id, = source.sql("SELECT run_id FROM dag_run WHERE dag_id = 'bulk_a' AND state = 'success' "
                         "ORDER BY start_date DESC LIMIT 1")[0]
    line = "2024-01-01T00:00:00.000+0000 {bulk.py:1} INFO - " + "x" * 150 + "\n"
    body = line * (20 * 1024 * 1024 // len(line) + 1)
    path = source.home / "logs" / "dag_id=bulk_a" / f"run_id={run_id}" / "task_id=extract" / "attempt=1.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    try:
        conf = {"resources": ["dag_history", "task_logs"], "dag_ids": ["bulk_a"], "runs_limit": 1}
        result = rig.run_migration_dag(target, source, conf)
        assert result.run_state == "success", result.explain()
        copied = target.home / "logs" / path.relative_to(source.home / "logs")
        assert copied.stat().st_size == len(body) >= 20 * 1024 * 1024
        assert copied.read_bytes() == path.read_bytes()
        growth = re.findall(r"task_logs memory: ([\d.]+) MB at the start, peak ([\d.]+) MB \(\+([\d.]+) MB\)", result.output)
        assert growth, result.output[-3000:]
        with capsys.disabled():  # the measurement belongs in the test output, even when it passes
            print(f"\n20 MB log: logs task memory (start MB, peak MB, growth MB): {growth}")
        assert float(growth[-1][2]) < 50, growth
    finally:
        path.unlink()
        reset_history(target)


@pytest.mark.parametrize("target", ["2.11"], indirect=True, scope="session")
def test_conflict_policy_for_differing_xcoms_and_logs(history_target):
    source, target = history_target
    conf = {"resources": ["dag_history", "xcoms", "task_logs"], "dag_ids": ["hist_retry"]}
    first = rig.run_migration_dag(target, source, conf)
    assert first.run_state == "success", first.explain()
    key = ("hist_retry", "after")
    target.sql("UPDATE xcom SET value = %s WHERE dag_id = %s AND task_id = %s AND key = 'return_value'",
               (b'"tampered"', *key))
    logs = sorted((target.home / "logs" / "dag_id=hist_retry").rglob("task_id=flaky/attempt=1.log"))
    assert logs
    original = logs[0].read_bytes()
    logs[0].write_bytes(original + b"a line only the target has\n")

    def outcome(result, kind):
        assert result.run_state == "success", result.explain()
        return artifact_totals(result, kind)

    kept = rig.run_migration_dag(target, source, {**conf, "full_comparison": True, "conflict_policy": "skip"})
    assert outcome(kept, "xcoms")["skipped"] >= 1 and outcome(kept, "task_logs")["skipped"] >= 1
    assert target.sql("SELECT count(*) FROM xcom WHERE dag_id = %s AND task_id = %s AND value = %s",
                      (*key, b'"tampered"'))[0][0] >= 1
    replaced = rig.run_migration_dag(target, source, {**conf, "full_comparison": True, "conflict_policy": "overwrite"})
    assert outcome(replaced, "xcoms")["updated"] >= 1 and outcome(replaced, "task_logs")["updated"] >= 1
    for xcom_key, value in source_xcoms(source).items():
        if xcom_key[0] == "hist_retry":
            assert target_xcom(target, xcom_key) == value, xcom_key
    assert logs[0].read_bytes() == original


def test_xcoms_cost_requests_by_the_xcoms_not_by_the_task_instances(history_target):
    """bulk_a: 1,249 finished runs and about 5,000 task instances without a single XCom (as an
    imported or cleaned deployment has them); hist_mapped: every task instance with XComs."""
    source, target = history_target
    result = rig.run_migration_dag(target, source, {"resources": ["dag_history", "xcoms"],
                                                    "dag_ids": ["bulk_a", "hist_mapped"]})
    assert result.run_state == "success", result.explain()
    xcoms = {s["dag_id"]: s for s in summaries_of(result, "xcoms")}
    assert xcoms["bulk_a"]["created"] == 0 and xcoms["bulk_a"]["source_api_calls"] <= 2, xcoms["bulk_a"]
    assert xcoms["bulk_a"]["target_requests"] <= 2, xcoms["bulk_a"]
    with_xcoms = len({k[:4] for k in source_xcoms(source) if k[0] == "hist_mapped"})
    assert xcoms["hist_mapped"]["created"] == len([k for k in source_xcoms(source) if k[0] == "hist_mapped"])
    # one listing page, then one read per task instance that has XComs (Starship gives all its keys at once)
    assert xcoms["hist_mapped"]["source_api_calls"] <= with_xcoms + 2, (xcoms["hist_mapped"], with_xcoms)
    reset_history(target)
