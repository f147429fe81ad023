"""History parity checks shared by the history, fault and hostile-input tests (source vs target)."""

from __future__ import annotations

from starship_dags.translate import parse_datetime
from tests.integration import history_seed, rig
from tests.integration.history_seed import REAL_DAGS

ALL_DAGS = (*REAL_DAGS, *history_seed.BULK_DAGS)
# The source also has a DAG that the targets never parsed; it has a test of its own.
HISTORY = {"resources": ["dag_history"], "dag_ids": list(ALL_DAGS)}
FINISHED = ("success", "failed")
RUN_FIELDS = ("state", "run_type", "conf", "start_date", "end_date", "data_interval_start", "data_interval_end",
              "queued_at", "logical")
TI_FIELDS = ("state", "try_number", "max_tries", "duration", "operator", "pool", "pool_slots", "map_index",
             "rendered_map_index", "start_date", "end_date", "queue", "priority_weight", "hostname", "task_display_name")


def reset_history(target: rig.AirflowServer, dags=ALL_DAGS) -> None:
    if target.major == 2:
        target.sql("DELETE FROM task_instance_history WHERE dag_id = ANY(%s)", (list(dags),))
    target.sql("DELETE FROM dag_run WHERE dag_id = ANY(%s)", (list(dags),))
    target.sql("DELETE FROM variable WHERE key LIKE 'starship\\_dags.sync.%%'")


def norm(value):
    moment = None
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] in " T":
        try:
            moment = parse_datetime(value)
        except ValueError:
            moment = None
    return moment.isoformat() if moment else value


def runs_of(server: rig.AirflowServer, dag_id: str, finished_only: bool = True) -> dict[str, dict]:
    rows = server.client().all_rows("dag_runs", dag_id, "dag_runs")
    out = {}
    for row in rows:
        if finished_only and row["state"] not in FINISHED:
            continue
        row = {**row, "logical": row.get("logical_date") or row.get("execution_date")}
        out[row["run_id"]] = {f: norm(row.get(f)) for f in RUN_FIELDS}
    return out


def tis_of(server: rig.AirflowServer, dag_id: str, route: str, run_ids: set[str]) -> dict[tuple, dict]:
    out = {}
    for row in server.client().all_rows(route, dag_id, "task_instances"):
        if row["run_id"] not in run_ids:
            continue
        key = (row["run_id"], row["task_id"], row["map_index"])
        if route == "task_instance_history":
            key += (row["try_number"],)
        values = {f: norm(row.get(f)) for f in TI_FIELDS}
        # Airflow shows the task id where the display name is NULL (and Starship on Airflow 2.8 and
        # older does not serve the column at all)
        values["task_display_name"] = values["task_display_name"] or row["task_id"]
        if values["rendered_map_index"] is None and row["map_index"] >= 0:
            # Airflow 3's model shows str(map_index) where the stored label is NULL, Airflow 2 shows NULL.
            values["rendered_map_index"] = str(row["map_index"])
        out[key] = values
    return out


def assert_parity(source: rig.AirflowServer, target: rig.AirflowServer, dags=ALL_DAGS, skip_runs=()) -> None:
    for dag_id in dags:
        src_runs = {k: v for k, v in runs_of(source, dag_id).items() if k not in skip_runs}
        tgt_runs = runs_of(target, dag_id, finished_only=False)
        assert {k: tgt_runs.get(k) for k in src_runs} == src_runs, f"{dag_id}: runs differ"
        for route in ("task_instances", "task_instance_history"):
            src = tis_of(source, dag_id, route, set(src_runs))
            tgt = tis_of(target, dag_id, route, set(src_runs))
            diffs = [(k, {f: (v[f], tgt.get(k, {}).get(f)) for f in v if tgt.get(k, {}).get(f) != v[f]})
                     for k, v in src.items() if tgt.get(k) != v]
            assert tgt == src, (
                f"{dag_id}: {route} differ ({len(src)} on the source, {len(tgt)} on the target); "
                f"first (source, target) differences: {diffs[:3]}"
            )


def assert_no_duplicates_or_orphans(source: rig.AirflowServer, target: rig.AirflowServer, dags=ALL_DAGS) -> None:
    dups = target.sql(
        "SELECT dag_id, run_id, task_id, map_index, count(*) FROM task_instance WHERE dag_id = ANY(%s) "
        "GROUP BY 1, 2, 3, 4 HAVING count(*) > 1", (list(dags),))
    assert dups == []
    orphans = target.sql(
        "SELECT r.dag_id, r.run_id FROM dag_run r WHERE r.dag_id = ANY(%s) AND r.state IN ('success', 'failed') "
        "AND NOT EXISTS (SELECT 1 FROM task_instance t WHERE t.dag_id = r.dag_id AND t.run_id = r.run_id)",
        (list(dags),))
    with_tis = set(source.sql("SELECT DISTINCT dag_id, run_id FROM task_instance WHERE dag_id = ANY(%s)",
                              (list(dags),)))
    orphans = [o for o in orphans if tuple(o) in with_tis]
    assert orphans == [], f"runs without their task instances: {orphans[:5]}"


# --------------------------------------------------------------------------- pools, variables, connections

FIELDS = {
    "pools": ("name", "slots", "description", "include_deferred"),
    "variables": ("key", "val", "description"),
    "connections": ("conn_id", "conn_type", "host", "port", "schema", "login", "password", "extra", "description"),
}
KEYS = {"pools": "name", "variables": "key", "connections": "conn_id"}


def snapshot(server: rig.AirflowServer) -> dict[str, dict[str, dict]]:
    client = server.client()
    return {
        resource: {k: {f: v.get(f) for f in FIELDS[resource]} for k, v in client.by_key(resource, KEYS[resource]).items()}
        for resource in FIELDS
    }
