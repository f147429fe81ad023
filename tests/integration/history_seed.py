"""Bulk DAG history written into the source through Airflow's own models (runs inside the source's venv)."""

from __future__ import annotations

REAL_DAGS = ("hist_mapped", "hist_retry", "hist_failing")  # run by the source's real scheduler
BULK_DAGS = ("bulk_a", "bulk_b", "bulk_c", "bulk_d")
BULK_RUNS = 1250  # per bulk DAG: 5,000 runs and about 20,000 task instances in all
QUEUED_RUN = 1249  # this run of each bulk DAG stays queued: skipped, counted, picked up later
BULK_TASKS = ("extract", "transform", "load", "report")

#: A DAG whose file only the source has: an Airflow 3 target has never parsed it.
SOURCE_ONLY_DAG_ID = "source_only"
SOURCE_ONLY_DAG = """
from airflow import DAG
from airflow.operators.empty import EmptyOperator

with DAG("source_only", schedule=None, catchup=False, tags=["starship-test"]):
    EmptyOperator(task_id="only")
"""

SCRIPT = r"""
import datetime, json, sys
import airflow.models  # noqa: F401  (registers every table, Trigger included)
from airflow.models import DagRun, TaskInstance, Trigger  # noqa: F401
from airflow.models.taskinstancehistory import TaskInstanceHistory
from airflow.utils.session import create_session

spec = json.load(sys.stdin)
base = datetime.datetime(2023, 1, 1, tzinfo=datetime.timezone.utc)
runs, tis, tries = [], [], []
for dag_id in spec["dags"]:
    for i in range(spec["first"], spec["first"] + spec["runs"]):
        logical = base + datetime.timedelta(hours=i)
        started = base + datetime.timedelta(days=400, minutes=i, seconds=hash(dag_id) % 50)
        run_id = f"scheduled__{logical.isoformat()}"
        state = "failed" if i % 50 == 7 else "success"
        if i in spec.get("queued", []):
            state = "queued"
        runs.append(dict(dag_id=dag_id, run_id=run_id, execution_date=logical, run_type="scheduled",
                         _state=state, start_date=None if state == "queued" else started,
                         end_date=None if state == "queued" else started + datetime.timedelta(seconds=30),
                         queued_at=started, external_trigger=False, conf={"i": i, "ü": ["✓"]} if i % 10 == 0 else {},
                         data_interval_start=logical, data_interval_end=logical + datetime.timedelta(hours=1),
                         clear_number=0, creating_job_id=1, dag_hash="0f" * 16,
                         last_scheduling_decision=None if state == "queued" else started + datetime.timedelta(seconds=30)))
        if state == "queued":
            continue
        for n, task_id in enumerate(spec["tasks"]):
            retried = n == 0 and i % 10 == 3
            ti_state = "failed" if (state == "failed" and n == len(spec["tasks"]) - 1) else "success"
            common = dict(dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=-1, pool="default_pool",
                          pool_slots=1, queue="default", priority_weight=len(spec["tasks"]) - n,
                          operator="_PythonDecoratedOperator", custom_operator_name="@task", hostname="worker-1",
                          unixname="airflow", executor_config={}, max_tries=1 if retried else 0, task_display_name=task_id,
                          queued_by_job_id=1)
            t0 = started + datetime.timedelta(seconds=5 * n)
            # as a scheduler leaves them: queued just before the start, run by a job in a process
            common.update(queued_dttm=t0 - datetime.timedelta(seconds=1), job_id=10 + i, pid=1000 + i % 30000)
            if retried:
                tries.append(dict(common, try_number=1, state="failed", start_date=t0, end_date=t0 + datetime.timedelta(seconds=1),
                                  duration=1.0))
                t0 = t0 + datetime.timedelta(seconds=2)
                common.update(queued_dttm=t0 - datetime.timedelta(seconds=1), job_id=20 + i)
            tis.append(dict(common, try_number=2 if retried else 1, state=ti_state, start_date=t0,
                            end_date=t0 + datetime.timedelta(seconds=3), duration=3.0 + (i % 7) / 10))
with create_session() as session:
    session.bulk_insert_mappings(DagRun, runs)
    session.flush()
    session.bulk_insert_mappings(TaskInstance, tis)
    session.bulk_insert_mappings(TaskInstanceHistory, tries)
print(json.dumps({"runs": len(runs), "tis": len(tis), "tries": len(tries)}))
"""
