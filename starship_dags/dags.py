"""Builds the migration DAG from the operators. ``dags/starship_migration.py`` only calls this.

Every option is an Airflow ``Param``, so the trigger form of the Airflow 2 and 3 UIs shows it
with a title and a description. Templates render as native objects, so list and boolean params
reach the operators as lists and booleans.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum

from starship_dags.compat import DAG, Param, TaskGroup, task_group
from starship_dags.operators.connections import ConnectionsMigrationOperator
from starship_dags.operators.cutover import CutoverPauseOperator, CutoverUnpauseOperator
from starship_dags.operators.environment import SourceEnvironmentOperator
from starship_dags.operators.guard import GUARD_TASK_ID
from starship_dags.operators.artifacts import KINDS as ARTIFACT_KINDS
from starship_dags.operators.artifacts import ArtifactsMigrationOperator
from starship_dags.operators.dag_runs import DagRunsMigrationOperator
from starship_dags.operators.pools import PoolsMigrationOperator
from starship_dags.operators.report import MigrationReportOperator
from starship_dags.operators.reset import ResetTargetOperator
from starship_dags.operators.start import HISTORY_TASKS, DiscoverDagsOperator
from starship_dags.operators.validation import HistoryValidationOperator, SettingsValidationOperator
from starship_dags.operators.variables import VariablesMigrationOperator

KEYED_RESOURCES = {
    "pools": (PoolsMigrationOperator, "pool_names", "Pool names"),
    "variables": (VariablesMigrationOperator, "variable_keys", "Variable keys"),
    "connections": (ConnectionsMigrationOperator, "connection_ids", "Connection ids"),
}
HISTORY = "dag_history"
RESOURCES = [*KEYED_RESOURCES, HISTORY, *ARTIFACT_KINDS]
MIGRATION_DAG_ID = "starship_migration"
SYNC_DAG_ID = "starship_sync"
RESET_DAG_ID = "starship_reset_target"
#: The scheduled sync's default schedule; ``STARSHIP_SYNC_SCHEDULE`` (a cron expression) changes it.
SYNC_SCHEDULE = "*/30 * * * *"

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
* *History tasks*: how many tasks copy the histories side by side; the DAGs are dealt out among
  them by the rows each has to copy, and each task's label in the grid lists its DAGs.
* *xcoms* and *task_logs* (resources): the XComs and every try's log of each migrated task
  instance, for the DAGs whose history is migrated. Logs are read through Starship where the
  source serves them (Astronomer environments), otherwise through the source's REST API. Into
  Airflow 3 they are written as files where the target's log reader looks, so this DAG must run
  in the target.
* *notes* (resource): the notes of the migrated runs and task instances (the target shows the
  connection's user as their author).
* *Full comparison*: ignore the incremental-sync markers and compare every run and task
  instance with the target (an unchanged DAG otherwise costs one request to the source).
* *Validate counts*: after copying, count runs and task instances per DAG, and pools, variables
  and connections, on both sides; a difference fails the run.
* *Cut over* (with *DAG ids*, empty = all): pause each of those DAGs on the source once none of
  its runs is queued or running there (waiting up to *Cutover timeout*), copy their last runs, then
  unpause them on the target once its scheduler counts the copied runs (so it creates no run
  for an interval that already ran on the source). With *Keep paused DAGs paused*, DAGs that
  were paused on the source stay paused on the target.

`starship_sync` runs the same copy on a schedule (every 30 minutes unless
`STARSHIP_SYNC_SCHEDULE` says otherwise), with conflict policy `overwrite`, until the cutover.
It skips a run while this DAG runs; this DAG waits for a running sync to finish.

Every task logs a summary table; the `report` task gathers them, lists the connections and
variables the source defines in environment variables (names only: set these on the target), and
fails the run if anything failed. Secrets (passwords, tokens, sensitive variable values) are never
logged.
"""


def migration_params(*, sync: bool = False) -> dict[str, Param]:
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
            "overwrite" if sync else "skip",
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
            None,
            type=["null", "array"],  # optional: the trigger forms leave an empty field as null
            items={"type": "string"},
            title=title,
            description=f"Only these {resource}; empty means all.",
        )
    params["dag_ids"] = Param(
        None, type=["null", "array"], items={"type": "string"}, title="DAG ids",
        description="Whose history to migrate (and cut over); empty means every DAG of the source.",
    )
    params["runs_limit"] = Param(
        0, type="integer", minimum=0, title="Most recent runs per DAG",
        description="Copy at most this many of the newest finished runs of each DAG; 0 means all.",
    )
    params["since"] = Param(
        None, type=["null", "string"], title="Runs since",
        description="Only runs whose logical date is on or after this date (e.g. 2024-06-01); empty means all.",
    )
    params["history_tasks"] = Param(
        HISTORY_TASKS, type="integer", minimum=1, maximum=64, title="History tasks",
        description="How many tasks copy the DAGs' histories side by side; the DAGs are dealt out among them "
        "by the rows each has to copy. "
        "More copy faster where both servers have CPU to spare; each costs the target's scheduler a task.",
    )
    params["full_comparison"] = Param(
        False, type="boolean", title="Full comparison",
        description="Compare every run and task instance with the target, even for DAGs unchanged since the last sync.",
    )
    params["validate"] = Param(
        True, type="boolean", title="Validate counts",
        description="After copying, count each resource and each DAG's runs and task instances on both sides; "
        "a difference fails the run.",
    )
    if not sync:
        params["cutover"] = Param(
            False, type="boolean", title="Cut over",
            description="Pause the DAGs on the source once their runs have finished, copy the last runs, "
            "then unpause them on the target. Needs dag_history. Uses DAG ids (empty: all).",
        )
        params["mirror_paused"] = Param(
            True, type="boolean", title="Keep paused DAGs paused",
            description="At cutover, DAGs paused on the source stay paused on the target.",
        )
        params["cutover_timeout_minutes"] = Param(
            30, type="integer", minimum=1, title="Cutover timeout (minutes)",
            description="How long to wait for the source's runs to finish (then the DAGs paused there are "
            "unpaused again and the run fails), and for the target to re-parse the DAGs (then they stay paused).",
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


def _selected(*names: str) -> str:
    """A template: true when every one of these resources is selected."""
    return "{{ %s }}" % " and ".join(f"'{n}' in params.resources" for n in names)


def build_migration_dag(dag_id: str = MIGRATION_DAG_ID, *, sync: bool = False, **dag_kwargs: Any) -> DAG:
    """The manual migration DAG, or with ``sync`` the scheduled incremental sync."""
    common = {
        "source_conn_id": "{{ params.source_conn_id }}",
        "target_conn_id": "{{ params.target_conn_id }}",
        "conflict_policy": "{{ params.conflict_policy }}",
        "dry_run": "{{ params.dry_run }}",
    }
    connections = {k: common[k] for k in ("source_conn_id", "target_conn_id")}
    dag_kwargs.setdefault("schedule", (os.environ.get("STARSHIP_SYNC_SCHEDULE") or SYNC_SCHEDULE) if sync else None)
    dag_kwargs.setdefault("start_date", pendulum.datetime(2024, 1, 1, tz="UTC"))
    dag_kwargs.setdefault("catchup", False)
    dag_kwargs.setdefault("tags", ["migration", "starship"])
    cutover = "{{ params.cutover | default(false) }}"
    timeout = "{{ params.cutover_timeout_minutes | default(30) }}"
    validating = "params.validate and not params.dry_run"  # a template expression, completed below
    with DAG(
        dag_id,
        params=migration_params(sync=sync),
        render_template_as_native_obj=True,
        max_active_runs=1,
        doc_md=DOC_MD,
        default_args={"retries": 0},
        **dag_kwargs,
    ) as dag:
        expected: dict[str, str] = {}
        # The run's first task: the guard (stand aside for / wait for the other migration DAG, skip
        # what the form leaves out), then the list of DAGs whose history to copy, in batches.
        start = DiscoverDagsOperator(
            task_id=GUARD_TASK_ID, other_dag_id=MIGRATION_DAG_ID if sync else SYNC_DAG_ID, wait=not sync,
            timeout_minutes=timeout,
            dag_ids="{{ params.dag_ids }}",
            enabled=_selected(HISTORY),
            full_comparison="{{ params.full_comparison }}",
            tasks="{{ params.history_tasks }}",
            **connections,
        )
        with TaskGroup("settings", tooltip="Pools, variables and connections") as settings:
            for resource, (operator, param_name, _) in KEYED_RESOURCES.items():
                enabled = _selected(resource)
                task = operator(task_id=resource, names="{{ params.%s }}" % param_name, enabled=enabled, **common)
                expected[task.task_id] = enabled
            environment = SourceEnvironmentOperator(
                task_id="environment", enabled="{{ 'variables' in params.resources or 'connections' in params.resources }}",
                **common,
            )
            expected[environment.task_id] = environment.enabled
        validate_settings = SettingsValidationOperator(
            task_id="validate_settings", keyed={r: spec[0] for r, spec in KEYED_RESOURCES.items()},
            selected_resources="{{ params.resources }}", names={r: "{{ params.%s }}" % spec[1] for r, spec in KEYED_RESOURCES.items()},
            enabled="{{ %s and (params.resources | select('in', %r) | list) }}" % (validating, list(KEYED_RESOURCES)),
            **common,
        )
        expected[validate_settings.task_id] = validate_settings.enabled
        history_enabled = _selected(HISTORY)
        validate_history = "{{ %s and '%s' in params.resources }}" % (validating, HISTORY)
        artifacts = "{{ params.resources | select('in', %r) | list if '%s' in params.resources else [] }}" % (
            list(ARTIFACT_KINDS), HISTORY)
        any_artifact = "{{ '%s' in params.resources and (params.resources | select('in', %r) | list | length > 0) }}" % (
            HISTORY, list(ARTIFACT_KINDS))
        pause = CutoverPauseOperator(
            task_id="cutover_pause_source", enabled=cutover, dag_ids="{{ params.dag_ids }}",
            history_enabled=history_enabled, timeout_minutes=timeout, **common,
        )
        expected[pause.task_id] = cutover
        selection = {"runs_limit": "{{ params.runs_limit }}", "since": "{{ params.since }}"}

        @task_group(group_id="history", tooltip="Runs, task instances and retry history, per batch of source DAGs")
        def history(source_dags):
            runs = DagRunsMigrationOperator(
                task_id="dag_runs", source_dags=source_dags, artifacts=artifacts, **selection, **common,
                # after the start, and after the cutover's pause unless the start skipped it; not
                # when the start stood aside (then the pause is skipped too)
                trigger_rule="none_failed_min_one_success",
            )
            pause >> runs
            # XComs, logs and notes in one task: a task start less per batch, all copied side by side.
            # Its id sorts after "dag_runs": Airflow 2 looks at a pass's task instances in the order of
            # their ids, so this one is expanded in the pass after dag_runs', while dag_runs runs, and
            # dag_runs can mark it skipped at once when its DAGs are unchanged (see operators/skipping.py)
            copies = [ArtifactsMigrationOperator(task_id="xcoms_logs_notes", source_dags=source_dags, plans=runs.output,
                                                 kinds=artifacts, enabled=any_artifact, **selection, **common)]
            check = HistoryValidationOperator(
                task_id="validate", source_dags=source_dags, plans=runs.output,
                enabled=validate_history, **selection, **common,
            )
            # dag_runs skips the later tasks that have nothing to do, so it is upstream of each
            runs.children = {**{c.task_id: c.enabled for c in copies}, check.task_id: check.enabled}
            runs.artifact_children = frozenset(c.task_id for c in copies)
            planned_by.update(dict.fromkeys(runs.children, runs.task_id))
            # The copy tasks run one after another; the last one that runs stores the DAG's sync marker.
            chain = [runs, *copies]
            for position, task in enumerate(chain):
                task.earlier = [t.task_id for t in chain[:position]]
                task.later = [t.task_id for t in chain[position + 1:]]
            ordered = [*chain, check]
            per_dag_tasks.extend(ordered)
            # Each task directly after every earlier one: a skipped task counts as done, so the
            # order must not pass through one.
            for position, task in enumerate(ordered[:-1]):
                task >> ordered[position + 1:]

        planned_by: dict[str, str] = {}  # the per-DAG tasks that dag_runs may skip (they leave no summary)
        per_dag_tasks: list = []
        per_dag = history.expand(source_dags=start.output)
        expected["history.dag_runs"] = history_enabled  # with task instances and retry history
        expected["history.xcoms_logs_notes"] = any_artifact
        expected["history.validate"] = validate_history
        unpause = CutoverUnpauseOperator(
            task_id="cutover_unpause_target", enabled=cutover, pause_task_id=pause.task_id,
            discover_task_id=start.task_id, mirror_paused="{{ params.mirror_paused | default(true) }}",
            # a DAG is unpaused on the target only when these left clean summaries
            settings_checks={t: e for t, e in expected.items() if t.startswith("settings.") and t != environment.task_id}
            | {validate_settings.task_id: validate_settings.enabled},
            dag_checks={t: e for t, e in expected.items() if t.startswith("history.")}, planned_by=planned_by,
            timeout_minutes=timeout, **common,
        )
        expected[unpause.task_id] = cutover
        # The start skips what the form leaves out before it starts (each started task costs a
        # process and a scheduling round). A skipped task counts as done, so no order may pass
        # through one: dag_runs also follows the start directly (through its input), the report
        # waits directly for the tasks it used to wait for through unpause (which the start may
        # skip), and unpause and the report for the settings tasks, not only through validate_settings.
        # The history's later tasks (XComs, logs, validation) are its direct downstream too (through
        # the group's input): those not selected are skipped before the group is expanded, so the
        # scheduler does not weigh one waiting task per batch for each of them while the copy runs.
        start.children = {task_id: enabled for task_id, enabled in expected.items() if task_id.startswith("settings.")
                          or task_id in (validate_settings.task_id, pause.task_id, unpause.task_id)
                          or task_id in planned_by}
        report = MigrationReportOperator(
            task_id="report",
            expected=expected,
            mapped={task_id: start.task_id for task_id in expected if task_id.startswith("history.")},
            planned_by=planned_by,
        )
        start >> [settings, pause, validate_settings, unpause]
        settings >> validate_settings
        [settings, validate_settings, per_dag] >> unpause >> report
        # The group's last task may be skipped while the others still run: wait for every one.
        per_dag_tasks >> unpause
        [settings, validate_settings, *per_dag_tasks] >> report
    return dag


RESET_DOC_MD = """
### Reset DAGs on the target

Deletes the history of the DAGs named (runs, task instances, retry history, XComs, notes, the log
files under this Airflow's log folder, and the sync markers) from **this Airflow, the target**, so
that the next `starship_migration` copies them whole. The source is only read. Type the DAG ids
twice; a *Dry run* (the default) counts what would be deleted. A DAG unpaused here with runs the
migration did not make is refused unless *Delete the target's own runs too* is on.
"""


def build_reset_dag(dag_id: str = RESET_DAG_ID, **dag_kwargs: Any) -> DAG:
    """``starship_reset_target``: start over for some DAGs on the target."""
    dag_kwargs.setdefault("schedule", None)
    dag_kwargs.setdefault("start_date", pendulum.datetime(2024, 1, 1, tz="UTC"))
    dag_kwargs.setdefault("catchup", False)
    dag_kwargs.setdefault("tags", ["migration", "starship"])
    params = {
        "dag_ids": Param([], type="array", items={"type": "string"}, minItems=1, title="DAG ids",
                         description="Whose history to delete from this Airflow (the target)."),
        "confirm_dag_ids": Param([], type="array", items={"type": "string"}, title="DAG ids, again",
                                 description="The same DAG ids once more: nothing is deleted unless both lists agree."),
        "dry_run": Param(True, type="boolean", title="Dry run", description="Count what would be deleted; delete nothing."),
        "allow_target_runs": Param(False, type="boolean", title="Delete the target's own runs too",
                                   description="Also reset a DAG that is unpaused here and has runs the migration did "
                                   "not make; those are deleted with the rest."),
        "source_conn_id": Param("starship_source", type="string", minLength=1, title="Source connection id",
                                description="Read only: the source's runs tell the migrated runs from this Airflow's own."),
        "target_conn_id": Param("starship_target", type="string", minLength=1, title="Target connection id",
                                description="This Airflow, where the history is deleted."),
    }
    with DAG(dag_id, params=params, render_template_as_native_obj=True, max_active_runs=1, doc_md=RESET_DOC_MD,
             default_args={"retries": 0}, **dag_kwargs) as dag:
        ResetTargetOperator(
            task_id="reset", dag_ids="{{ params.dag_ids }}", confirm_dag_ids="{{ params.confirm_dag_ids }}",
            allow_target_runs="{{ params.allow_target_runs }}", dry_run="{{ params.dry_run }}",
            source_conn_id="{{ params.source_conn_id }}", target_conn_id="{{ params.target_conn_id }}",
        )
    return dag
