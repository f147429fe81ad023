"""The benchmark's source data: N DAGs x R runs x T tasks, and a few hundred pools, variables and
connections, written into a fresh Airflow 2.11 source through Airflow's own models."""

from __future__ import annotations

import json
from dataclasses import dataclass

from tests.integration import history_seed, rig

DAG_PREFIX = "bench_"
RSS_PREFIX = "bench_rss_"

#: A DAG file that declares the benchmark's DAG ids on the source (Starship lists DAGs from there).
DAG_FILE = """
import datetime

from airflow import DAG
from airflow.operators.empty import EmptyOperator

DAGS = {dags!r}
for dag_id, tasks in DAGS.items():
    with DAG(dag_id, schedule=None, start_date=datetime.datetime(2023, 1, 1), catchup=False,
             tags=["starship-bench"]) as dag:
        for task_id in tasks:
            EmptyOperator(task_id=task_id)
    globals()[dag_id] = dag
"""


@dataclass(frozen=True)
class Shape:
    dags: int
    runs: int
    tasks: int

    @property
    def dag_ids(self) -> list[str]:
        return [f"{DAG_PREFIX}{n:03d}" for n in range(self.dags)]

    @property
    def task_ids(self) -> list[str]:
        return [f"task_{n}" for n in range(self.tasks)]

    def __str__(self) -> str:
        return f"{self.dags} DAGs x {self.runs} runs x {self.tasks} tasks"


def rss_dag_id(task_instances: int) -> str:
    return f"{RSS_PREFIX}{task_instances}"


def declare_dags(source: rig.AirflowServer, dags: dict[str, list[str]], filename: str) -> None:
    """Write a DAG file declaring these DAGs into the source and have Airflow register them."""
    (source.dags_folder / filename).write_text(DAG_FILE.format(dags=dags))
    source.cli("dags", "reserialize", timeout=600)


def seed_history(source: rig.AirflowServer, dag_ids: list[str], runs: int, task_ids: list[str]) -> dict[str, int]:
    """Finished runs (every 50th failed), their task instances, and a failed first try of the first
    task in every tenth run (retry history); the same generator as the history tests."""
    out = source.python(history_seed.SCRIPT, stdin=json.dumps(
        {"dags": dag_ids, "first": 0, "runs": runs, "tasks": task_ids}), timeout=1800)
    return json.loads(out.strip().splitlines()[-1])


def seed_settings(source: rig.AirflowServer, pools: int, variables: int, connections: int) -> None:
    rig.seed(source, {
        "pools": [{"name": f"bench_pool_{n:03d}", "slots": 1 + n % 16, "description": f"pool {n}"}
                  for n in range(pools)],
        "variables": [{"key": f"bench_var_{n:03d}", "val": json.dumps({"n": n, "text": "v" * (n % 40)}),
                       "description": f"variable {n}"} for n in range(variables)],
        "connections": [{"conn_id": f"bench_conn_{n:03d}", "conn_type": "postgres", "host": f"db{n}.example.internal",
                         "port": 5432, "schema": "analytics", "login": f"user{n}", "password": f"Bench-secret-{n}",
                         "extra": json.dumps({"sslmode": "require"})} for n in range(connections)],
    })
