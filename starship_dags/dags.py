"""Builds the migration DAG from the operators. ``dags/starship_migration.py`` only calls this.

Every option is an Airflow ``Param``, so the trigger form of the Airflow 2 and 3 UIs shows it
with a title and a description. Templates render as native objects, so list and boolean params
reach the operators as lists and booleans.
"""

from __future__ import annotations

from typing import Any

import pendulum

from starship_dags.compat import DAG, Param, TaskGroup, task_group
from starship_dags.operators.artifacts import TaskLogsMigrationOperator, XComsMigrationOperator
from starship_dags.operators.connections import ConnectionsMigrationOperator
from starship_dags.operators.history import (
    DagRunsMigrationOperator,
    DiscoverDagsOperator,
    TaskInstanceHistoryMigrationOperator,
    TaskInstancesMigrationOperator,
)
from starship_dags.operators.pools import PoolsMigrationOperator
from starship_dags.operators.report import MigrationReportOperator
from starship_dags.operators.variables import VariablesMigrationOperator

KEYED_RESOURCES = {
    "pools": (PoolsMigrationOperator, "pool_names", "Pool names"),
    "variables": (VariablesMigrationOperator, "variable_keys", "Variable keys"),
    "connections": (ConnectionsMigrationOperator, "connection_ids", "Connection ids"),
}
HISTORY = "dag_history"
ARTIFACTS = {"xcoms": XComsMigrationOperator, "task_logs": TaskLogsMigrationOperator}
RESOURCES = [*KEYED_RESOURCES, HISTORY, *ARTIFACTS]

DOC_MD = """
### Starship migration

Copies metadata from a **source** Airflow into a **target** Airflow through the Starship
plugin (`astronomer-starship`), which must be installed on both.

**Set-up.** Create two connections of type *Starship* (or set `AIRFLOW_CONN_STARSHIP_SOURCE` and
`AIRFLOW_CONN_STARSHIP_TARGET`): *Airflow URL* is the web UI's address; either a username and
password of an admin user, or an API token in the password field (or `extra.token`). The DAG runs
in the target, so the target connection usually points at this Airflow itself.

**Options.**
* *Resources*: what to migrate.
* *Names*: limit a resource to some names; empty means all.
* *Conflict policy*: what to do with items that already exist on the target and differ:
  `skip` leaves them, `overwrite` makes them equal to the source, `fail` reports them as failures.
* *Dry run*: report what would change, write nothing.
* *DAG ids*: whose history (runs, task instances, retry history) to copy; empty means all DAGs
  of the source except the migration DAGs themselves. Queued and running runs are skipped and
  picked up by the next run. *Most recent runs* and *Runs since* limit how much history.
* *xcoms* and *task_logs* (resources): the XComs and every try's log of each migrated task
  instance, for the DAGs whose history is migrated. Logs are read through Starship where the
  source serves them (Astronomer environments), otherwise through the source's REST API. Into
  Airflow 3 they are written as files where the target's log reader looks, so this DAG must run
  in the target.
* *Full comparison*: ignore the incremental-sync markers and compare every run and task
  instance with the target (an unchanged DAG otherwise costs one request to the source).

Every task logs a summary table; the `report` task gathers them and fails the run if anything
failed. Secrets (passwords, tokens, sensitive variable values) are never logged.
"""


def migration_params() -> dict[str, Param]:
    params: dict[str, Param] = {
        "resources": Param(
            RESOURCES,
            type="array",
            items={"type": "string", "enum": RESOURCES},
            examples=RESOURCES,
            title="Resources",
            description="What to migrate.",
        ),
        "conflict_policy": Param(
            "skip",
            type="string",
            enum=["skip", "overwrite", "fail"],
            title="Conflict policy",
            description="Items that already exist on the target and differ: skip them, overwrite them "
            "with the source's version, or fail.",
        ),
        "dry_run": Param(False, type="boolean", title="Dry run", description="Report what would change; write nothing."),
    }
    for resource, (_, param_name, title) in KEYED_RESOURCES.items():
        params[param_name] = Param(
            [],
            type="array",
            items={"type": "string"},
            title=title,
            description=f"Only these {resource}; empty means all.",
        )
    params["dag_ids"] = Param(
        [], type="array", items={"type": "string"}, title="DAG ids",
        description="Whose history to migrate; empty means every DAG of the source.",
    )
    params["runs_limit"] = Param(
        0, type="integer", minimum=0, title="Most recent runs per DAG",
        description="Copy at most this many of the newest finished runs of each DAG; 0 means all.",
    )
    params["since"] = Param(
        "", type="string", title="Runs since",
        description="Only runs whose logical date is on or after this date (e.g. 2024-06-01); empty means all.",
    )
    params["full_comparison"] = Param(
        False, type="boolean", title="Full comparison",
        description="Compare every run and task instance with the target, even for DAGs unchanged since the last sync.",
    )
    params["source_conn_id"] = Param(
        "starship_source", type="string", minLength=1, title="Source connection id",
        description="Connection to the Airflow being migrated from.",
    )
    params["target_conn_id"] = Param(
        "starship_target", type="string", minLength=1, title="Target connection id",
        description="Connection to the Airflow being migrated to (usually this one).",
    )
    return params


def build_migration_dag(dag_id: str = "starship_migration", **dag_kwargs: Any) -> DAG:
    common = {
        "source_conn_id": "{{ params.source_conn_id }}",
        "target_conn_id": "{{ params.target_conn_id }}",
        "conflict_policy": "{{ params.conflict_policy }}",
        "dry_run": "{{ params.dry_run }}",
    }
    dag_kwargs.setdefault("schedule", None)
    dag_kwargs.setdefault("start_date", pendulum.datetime(2024, 1, 1, tz="UTC"))
    dag_kwargs.setdefault("catchup", False)
    dag_kwargs.setdefault("tags", ["migration", "starship"])
    with DAG(
        dag_id,
        params=migration_params(),
        render_template_as_native_obj=True,
        max_active_runs=1,
        doc_md=DOC_MD,
        default_args={"retries": 0},
        **dag_kwargs,
    ) as dag:
        expected: dict[str, str] = {}
        with TaskGroup("settings", tooltip="Pools, variables and connections") as settings:
            for resource, (operator, param_name, _) in KEYED_RESOURCES.items():
                enabled = "{{ '%s' in params.resources }}" % resource
                task = operator(task_id=resource, names="{{ params.%s }}" % param_name, enabled=enabled, **common)
                expected[task.task_id] = enabled
        history_enabled = "{{ '%s' in params.resources }}" % HISTORY
        artifacts = "{{ params.resources | select('in', %r) | list if '%s' in params.resources else [] }}" % (
            list(ARTIFACTS), HISTORY)
        discover = DiscoverDagsOperator(
            task_id="discover_dags",
            dag_ids="{{ params.dag_ids }}",
            enabled=history_enabled,
            full_comparison="{{ params.full_comparison }}",
            source_conn_id=common["source_conn_id"],
            target_conn_id=common["target_conn_id"],
        )
        selection = {"runs_limit": "{{ params.runs_limit }}", "since": "{{ params.since }}"}

        @task_group(group_id="history", tooltip="Runs, task instances and retry history, per source DAG")
        def history(source_dag):
            runs = DagRunsMigrationOperator(
                task_id="dag_runs", source_dag=source_dag, artifacts=artifacts, **selection, **common
            )
            tis = TaskInstancesMigrationOperator(
                task_id="task_instances", source_dag=source_dag, plan=runs.output, **selection, **common
            )
            copies = [
                operator(task_id=kind, source_dag=source_dag, plan=runs.output,
                         enabled="{{ '%s' in params.resources and '%s' in params.resources }}" % (kind, HISTORY),
                         **selection, **common)
                for kind, operator in ARTIFACTS.items()
            ]
            tries = TaskInstanceHistoryMigrationOperator(
                task_id="task_instance_history", source_dag=source_dag, plan=runs.output,
                siblings=[runs.task_id, tis.task_id], artifact_siblings={c.task_id: c.resource for c in copies},
                **selection, **common,
            )
            runs >> tis >> copies >> tries

        per_dag = history.expand(source_dag=discover.output)
        for task_id in ("history.dag_runs", "history.task_instances", "history.task_instance_history"):
            expected[task_id] = history_enabled
        for kind in ARTIFACTS:
            expected[f"history.{kind}"] = "{{ '%s' in params.resources and '%s' in params.resources }}" % (kind, HISTORY)
        report = MigrationReportOperator(
            task_id="report",
            expected=expected,
            mapped={task_id: discover.task_id for task_id in expected if task_id.startswith("history.")},
        )
        settings >> report
        per_dag >> report
    return dag
