"""A corpus of hostile records: odd ids, sizes, nulls and shapes, across every resource.

Each record has a name; after a migration every one of them must either be on the target
exactly, or be named in the report with a reason, while everything else still migrates.
"""

from __future__ import annotations

import json

LONG = "L" * 240  # padded to 250 characters below

VARIABLES = [
    {"key": "../../etc/passwd", "val": "dot-dot"},
    {"key": "key with spaces", "val": "spaces"},
    {"key": "quote's \"double\"", "val": "quotes"},
    {"key": ("var_" + LONG)[:250], "val": "250 characters of key"},
    {"key": "🚀 emoji ключ", "val": "🚀"},
    {"key": "pct%25%2Fdouble", "val": "double-encoded"},
    {"key": "one_megabyte", "val": "m" * 1_000_000},
    {"key": "null_description", "val": "x", "description": None},
    {"key": "control_chars", "val": "line1\nline2\ttab\r\nend \\ backslash"},
    {"key": "broken_json_value", "val": '{"unclosed": [1, 2'},
    {"key": " padded key ", "val": "leading and trailing spaces"},
]

POOLS = [
    {"name": "zero_slots", "slots": 0, "description": "no slots", "include_deferred": False},
    {"name": "unlimited_slots", "slots": -1, "description": "minus one", "include_deferred": False},
    {"name": "pool \"quoted\" 'x'", "slots": 2, "description": "quotes", "include_deferred": False},
    {"name": "../pool/x", "slots": 3, "description": "dot-dot", "include_deferred": False},
    {"name": ("pool_" + LONG)[:250], "slots": 4, "description": "250 characters", "include_deferred": False},
    {"name": "null_description_pool", "slots": 5, "description": None, "include_deferred": False},
]

# Inserted with SQL: Airflow 2.7+ refuses some of these ids in its model, older ones stored them.
CONNECTIONS = [
    {"conn_id": "conn with spaces", "conn_type": "http", "host": "h1"},
    {"conn_id": "conn%2Fpct", "conn_type": "http", "host": "h2"},
    {"conn_id": "conn'quote\"", "conn_type": "http", "host": "h3"},
    {"conn_id": ("conn_" + LONG)[:250], "conn_type": "http", "host": "h4"},
    {"conn_id": "🚀conn", "conn_type": "http", "host": "h5"},
    {"conn_id": "../..", "conn_type": "http", "host": "h6"},
    {"conn_id": "all_null_fields", "conn_type": "generic"},
    {"conn_id": "invalid_json_extra", "conn_type": "http", "extra": "{not json"},
    {"conn_id": "nested_extra", "conn_type": "http",
     "extra": json.dumps({"deep": json.loads("[" * 60 + "1" + "]" * 60)})},
    {"conn_id": "port_zero", "conn_type": "postgres", "host": "db", "port": 0},
    {"conn_id": "long_description", "conn_type": "http", "description": "d" * 100_000},
]

DAG_ID = "hostile.dag-x"
DAG_FILE = '''
import datetime
from airflow import DAG
from airflow.operators.empty import EmptyOperator

try:
    from airflow.sdk import task
except ImportError:  # Airflow 2
    from airflow.decorators import task

with DAG("hostile.dag-x", schedule="@daily", start_date=datetime.datetime(2020, 1, 1), catchup=False,
         tags=["starship-test"]):
    @task
    def sparse(n):
        return n

    EmptyOperator(task_id="plain") >> sparse.expand(n=[0, 1, 2, 3, 4, 5]) >> EmptyOperator(task_id="never_ran")
'''


def _nested(depth: int):
    value: object = "bottom"
    for level in range(depth):
        value = {f"level{level}": value}
    return value


RUNS = {
    "slashes": "manual__odd/ id 'q' \"dq\"",
    "long": ("manual__" + LONG)[:250],
    "unicode": "manual__ünï-🚀",
    "big_conf": "manual__big_conf",
    "huge_conf": "manual__huge_conf",
    "nested_conf": "manual__nested_conf",
    "null_conf": "manual__null_conf",
    "null_start": "manual__null_start",
    "null_interval": "manual__null_interval",
}
CONFS = {
    "big_conf": {"blob": "b" * 600_000},
    "huge_conf": {"blob": "h" * 2_000_000},  # above the Airflow 2 webserver's 1 MiB request limit
    "nested_conf": _nested(100),
    "null_conf": None,
}

#: Every hostile history record by name: (run key, what is odd).
HISTORY_ITEMS = {
    "run id with slash, space and quotes": "slashes",
    "250-character run id": "long",
    "unicode and emoji run id": "unicode",
    "600 KB conf": "big_conf",
    "2 MB conf": "huge_conf",
    "conf nested 100 deep": "nested_conf",
    "null conf": "null_conf",
    "run with NULL start and end dates": "null_start",
    "run with NULL data interval": "null_interval",
    "mapped task instances with map_index gaps (0, 2, 5)": "slashes",
    "task instance with NULL dates and duration": "slashes",
    "task instance that never ran (try 0, removed)": "slashes",
    "task instances whose run the target refused": "huge_conf",
}

SEED_HISTORY = r"""
import datetime, json, sys
import airflow.models  # noqa: F401
from airflow.models import DagRun, TaskInstance, Trigger  # noqa: F401  (Trigger: for the foreign key)
from airflow.utils.session import create_session

spec = json.load(sys.stdin)
base = datetime.datetime(2022, 6, 1, tzinfo=datetime.timezone.utc)
runs, tis = [], []
for n, (name, run_id) in enumerate(sorted(spec["runs"].items())):
    logical = base + datetime.timedelta(days=n)
    started = None if name == "null_start" else logical + datetime.timedelta(hours=1)
    interval = (None, None) if name == "null_interval" else (logical, logical + datetime.timedelta(days=1))
    runs.append(dict(dag_id=spec["dag_id"], run_id=run_id, execution_date=logical, run_type="manual", _state="success",
                     start_date=started, end_date=None if started is None else started + datetime.timedelta(minutes=1),
                     queued_at=logical, external_trigger=True, conf=spec["confs"].get(name, {"n": n}),
                     data_interval_start=interval[0], data_interval_end=interval[1], clear_number=0))
    t0 = started or logical
    common = dict(dag_id=spec["dag_id"], run_id=run_id, pool="default_pool", pool_slots=1, queue="default",
                  priority_weight=1, hostname="hôst-ü", unixname="airflow", executor_config={}, max_tries=0)
    tis.append(dict(common, task_id="plain", map_index=-1, try_number=1, state="success", start_date=t0,
                    end_date=t0 + datetime.timedelta(seconds=2), duration=2.0, operator="EmptyOperator",
                    task_display_name="plain"))
    if name == "slashes":
        for index in (0, 2, 5):
            tis.append(dict(common, task_id="sparse", map_index=index, try_number=1, state="success", start_date=t0,
                            end_date=t0 + datetime.timedelta(seconds=1), duration=1.0,
                            operator="_PythonDecoratedOperator", rendered_map_index=f"item #{index} ✓",
                            task_display_name="sparse"))
        tis.append(dict(common, task_id="never_ran", map_index=-1, try_number=0, state="removed", start_date=None,
                        end_date=None, duration=None, operator="EmptyOperator", task_display_name="never_ran"))
    else:
        tis.append(dict(common, task_id="never_ran", map_index=-1, try_number=1, state="upstream_failed",
                        start_date=None, end_date=None, duration=None, operator="EmptyOperator",
                        task_display_name="never_ran"))
with create_session() as session:
    session.bulk_insert_mappings(DagRun, runs)
    session.flush()
    session.bulk_insert_mappings(TaskInstance, tis)
print(json.dumps({"runs": len(runs), "tis": len(tis)}))
"""


def history_spec() -> dict:
    return {"dag_id": DAG_ID, "runs": RUNS, "confs": CONFS}


def keyed_count() -> int:
    return len(VARIABLES) + len(POOLS) + len(CONNECTIONS)
