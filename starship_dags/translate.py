"""DAG history records between Airflow versions: every Airflow 2 <-> 3 difference, once, table-driven.

Starship hands out rows as its server's tables hold them and inserts what it is given, so the
client translates. ``translate(kind, row, source_major, target_major)`` turns one source row
(a dag run, task instance or task instance history row) into the row the target accepts.

The differences, each applied by a table below:

* ``dag_run.execution_date`` (Airflow 2) is ``dag_run.logical_date`` (Airflow 3).
* Airflow 3 needs ``dag_run.run_after`` (NOT NULL): the end of the data interval for scheduled
  and backfill runs, the logical date otherwise (what Airflow 3 itself stores).
* Airflow 3 ``dag_run.triggered_by`` is NULL or an upper-case enum name; a lower-case value is
  stored but breaks Airflow 3's own REST listing. Airflow 2 has no such column: it is derived
  from the run type where that is unambiguous, else NULL.
* ``run_type`` ``dataset_triggered`` (Airflow 2) is ``asset_triggered`` (Airflow 3).
* Airflow 2 ``dag_run.external_trigger`` is gone in Airflow 3; going back it is derived from the
  run type.
* Airflow 3 task instances have a UUID primary key ``id`` and history rows a UUID primary key
  ``task_instance_id``. Rows from Airflow 2 get a uuid7 whose time is the row's start and whose
  random part is a hash of the natural key, so a rerun produces the same id.
* References to rows that exist only on the source (jobs, triggers, log templates, backfills,
  DAG versions, DAG hashes of Airflow 3) are dropped or set to NULL.
* Airflow 2 targets reject unknown columns (HTTP 500 "Unconsumed column names"), so they get
  only their own columns. Airflow 3 targets ignore unknown columns, but get only theirs too.
* A target column that the source row lacks (its Starship does not serve it) and that no rule
  fills is left out rather than sent as NULL: the target stores its own default, as Airflow would
  for a row without the value, and every column sent costs the target's insert work. Rows of one
  source have the same columns, so a request body's rows still share one column list.
* For the same reason a column that is NULL in every row of a request is left out of it
  (:func:`without_null_columns`): Starship's insert compiles one bound parameter per row and
  column, its largest cost per row. The target then stores NULL, as sent, except where a column
  has a server default or Starship fills it in rows that have it: those columns are always sent.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timezone
from typing import Any

DAG_RUN, TASK_INSTANCE, HISTORY = "dag_run", "task_instance", "task_instance_history"

_TI_COMMON = (
    "dag_id", "run_id", "task_id", "map_index", "start_date", "end_date", "duration", "state",
    "try_number", "max_tries", "hostname", "unixname", "pool", "pool_slots", "queue",
    "priority_weight", "operator", "custom_operator_name", "queued_dttm", "queued_by_job_id", "pid",
    "executor", "executor_config", "rendered_map_index", "external_executor_id", "trigger_id",
    "trigger_timeout", "next_method", "next_kwargs", "task_display_name",
)

#: The columns each target major version is sent, per record kind.
COLUMNS: dict[tuple[str, int], tuple[str, ...]] = {
    (DAG_RUN, 2): (
        "dag_id", "run_id", "queued_at", "execution_date", "start_date", "end_date", "state",
        "creating_job_id", "external_trigger", "run_type", "conf", "data_interval_start",
        "data_interval_end", "last_scheduling_decision", "dag_hash", "clear_number",
    ),
    (DAG_RUN, 3): (
        "dag_id", "run_id", "queued_at", "logical_date", "start_date", "end_date", "state",
        "creating_job_id", "run_type", "triggered_by", "triggering_user_name", "conf",
        "data_interval_start", "data_interval_end", "run_after", "last_scheduling_decision",
        "clear_number", "created_at", "partition_key", "partition_date",
    ),
    (TASK_INSTANCE, 2): (*_TI_COMMON, "job_id"),
    (TASK_INSTANCE, 3): ("id", *_TI_COMMON, "scheduled_dttm", "retry_delay_override", "retry_reason"),
    (HISTORY, 2): (*_TI_COMMON, "job_id"),
    (HISTORY, 3): ("task_instance_id", *_TI_COMMON, "scheduled_dttm", "retry_delay_override", "retry_reason"),
}

#: Renamed columns, per (source major, target major).
RENAMES: dict[tuple[int, int], dict[str, str]] = {
    (2, 3): {"execution_date": "logical_date"},
    (3, 2): {"logical_date": "execution_date"},
}

#: run_type values that differ between majors.
RUN_TYPES: dict[tuple[int, int], dict[str, str]] = {
    (2, 3): {"dataset_triggered": "asset_triggered"},
    (3, 2): {"asset_triggered": "dataset_triggered"},
}

#: Columns that point at source-only rows: always NULL on the target (so usually left out of a
#: request, as NULL in all its rows).
SOURCE_ONLY_REFERENCES = ("creating_job_id", "queued_by_job_id", "job_id", "trigger_id")

#: Columns sent even when NULL in every row of a request, because the target would not store NULL
#: without them: Starship sets executor_config (to an empty dict) and pickles conf only in rows that
#: have the key, and max_tries is nullable with a server default (-1) on Airflow 2. (A real-server
#: test checks on 2.11 and 3.3 that no other column sent is nullable with a server default.)
SENT_WHEN_NULL = frozenset({"executor_config", "conf", "max_tries"})

#: Airflow 3 triggered_by for an Airflow 2 run, where the run type tells it.
TRIGGERED_BY_FROM_RUN_TYPE = {
    "scheduled": "TIMETABLE",
    "backfill": "BACKFILL",
    "dataset_triggered": "ASSET",
    "asset_triggered": "ASSET",
}
TRIGGERED_BY_VALUES = {"CLI", "OPERATOR", "REST_API", "UI", "TEST", "TIMETABLE", "ASSET", "BACKFILL"}

#: Airflow 2 external_trigger for an Airflow 3 run.
SCHEDULER_RUN_TYPES = {"scheduled", "backfill"}

#: Defaults for NOT NULL columns the source may leave empty, per target major.
DEFAULTS: dict[tuple[str, int], dict[str, Any]] = {
    (TASK_INSTANCE, 3): {"try_number": 0, "max_tries": -1, "pool_slots": 1, "pool": "default_pool"},
    (HISTORY, 3): {"try_number": 0, "max_tries": -1, "pool_slots": 1, "pool": "default_pool"},
    (TASK_INSTANCE, 2): {"pool_slots": 1, "pool": "default_pool"},
    (HISTORY, 2): {"pool_slots": 1, "pool": "default_pool"},
    (DAG_RUN, 2): {"clear_number": 0},
    (DAG_RUN, 3): {"clear_number": 0},
}


def parse_datetime(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value
    text = str(value).replace(" ", "T", 1)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def stable_uuid7(natural_key: tuple, when: Any) -> str:
    """A valid uuid7: 48-bit milliseconds of ``when``, the rest from a hash of the natural key."""
    moment = parse_datetime(when)
    millis = int(moment.timestamp() * 1000) if moment else 0
    digest = bytearray(hashlib.sha256(repr(natural_key).encode()).digest()[:10])
    raw = bytearray(millis.to_bytes(6, "big")) + digest
    raw[6] = 0x70 | (raw[6] & 0x0F)  # version 7
    raw[8] = 0x80 | (raw[8] & 0x3F)  # RFC 4122 variant
    return str(uuid.UUID(bytes=bytes(raw)))


def ti_natural_key(row: dict[str, Any]) -> tuple:
    map_index = row.get("map_index")
    return (row["dag_id"], row["run_id"], row["task_id"], -1 if map_index is None else int(map_index))


def history_natural_key(row: dict[str, Any]) -> tuple:
    return (*ti_natural_key(row), int(row.get("try_number") or 0))


def _run_after(row: dict[str, Any]) -> Any:
    if row.get("run_after"):
        return row["run_after"]
    logical = row.get("logical_date") or row.get("execution_date")
    if row.get("run_type") in SCHEDULER_RUN_TYPES and row.get("data_interval_end"):
        return row["data_interval_end"]
    return logical or row.get("queued_at") or row.get("start_date")


def _triggered_by(row: dict[str, Any]) -> str | None:
    value = row.get("triggered_by")
    if isinstance(value, str) and value.upper() in TRIGGERED_BY_VALUES:
        return value.upper()
    return TRIGGERED_BY_FROM_RUN_TYPE.get(row.get("run_type") or "")


def translate(kind: str, row: dict[str, Any], source_major: int, target_major: int) -> dict[str, Any]:
    """One source row as the target accepts it (a new dict; the source row is not changed)."""
    pair = (source_major, target_major)
    renames = RENAMES.get(pair, {})
    out = {renames.get(k, k): v for k, v in row.items()}
    if "run_type" in out:
        out["run_type"] = RUN_TYPES.get(pair, {}).get(out["run_type"], out["run_type"])
    for column in SOURCE_ONLY_REFERENCES:
        if column in out:
            out[column] = None
    out["executor_config"] = None  # Starship replaces it with an empty dict anyway
    for column, default in DEFAULTS.get((kind, target_major), {}).items():
        if out.get(column) is None:
            out[column] = default

    if kind == DAG_RUN:
        if target_major >= 3:
            out["run_after"] = _run_after(out)
            out["triggered_by"] = _triggered_by(out)
            if source_major < 3:
                out["created_at"] = out.get("queued_at") or out.get("start_date")
        else:
            if out.get("execution_date") is None:  # Airflow 3 runs may have no logical date
                out["execution_date"] = _run_after(row)
            if out.get("external_trigger") is None:
                out["external_trigger"] = row.get("run_type") not in SCHEDULER_RUN_TYPES
        if out.get("conf") is None:
            out["conf"] = {}
    elif target_major >= 3:
        key = ti_natural_key(out)
        if kind == TASK_INSTANCE and not out.get("id"):
            out["id"] = stable_uuid7(key, out.get("start_date") or out.get("queued_dttm"))
        if kind == HISTORY and not out.get("task_instance_id"):
            out["task_instance_id"] = stable_uuid7(
                (*key, out.get("try_number")), out.get("start_date") or out.get("queued_dttm")
            )

    return {column: out[column] for column in COLUMNS[(kind, target_major)] if column in out}


def without_null_columns(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Translated rows (of one source, so with the same columns) without the columns that are NULL
    in every one of them, but those of SENT_WHEN_NULL. The rows are changed in place."""
    if not rows:
        return rows
    empty = [c for c in rows[0] if c not in SENT_WHEN_NULL and all(row.get(c) is None for row in rows)]
    if empty:
        for row in rows:
            for column in empty:
                row.pop(column, None)
    return rows
