"""Airflow version differences, and nothing else: one shim each, tried newest first, with a fallback
and the versions that need it. The package runs inside the *target* Airflow (2.10, 2.11, 3.0 to
3.3, see :mod:`starship_dags.versions`); every name below imports on each of them, and a test
imports this module and parses the DAG files on every one.
"""

from __future__ import annotations

import re

from airflow import __version__ as AIRFLOW_VERSION

AIRFLOW_MAJOR = int(AIRFLOW_VERSION.split(".", 1)[0])
#: The XCom of a task's skip list, and its field, as Airflow 2 and 3 read them (NotPreviouslySkippedDep)
SKIPMIXIN_KEY, SKIPMIXIN_SKIPPED = "skipmixin_key", "skipped"

# DAG authoring: Airflow 3 moved it to the task SDK (``airflow.sdk``); Airflow 2 keeps it in
# ``airflow.models``, ``airflow.decorators`` and ``airflow.utils``.
try:
    from airflow.sdk import DAG, BaseOperator, Param, TaskGroup, task_group
except ImportError:  # Airflow 2.10, 2.11
    from airflow.decorators import task_group
    from airflow.models import DAG, BaseOperator
    from airflow.models.param import Param
    from airflow.utils.task_group import TaskGroup

# Task exceptions: the task SDK exports them from 3.2 on (``airflow.exceptions`` warns there);
# 3.0 and 3.1 have them only in ``airflow.exceptions``, as Airflow 2 does.
try:
    from airflow.sdk.exceptions import AirflowException, AirflowSkipException, DownstreamTasksSkipped
except ImportError:  # Airflow 2.10, 2.11, 3.0, 3.1
    from airflow.exceptions import AirflowException, AirflowSkipException

    try:
        from airflow.exceptions import DownstreamTasksSkipped
    except ImportError:  # Airflow 2: skipping downstream tasks goes through an XCom (skip_own_downstream)
        DownstreamTasksSkipped = None

# Masking a value in task logs: the task SDK's logger on Airflow 3, the secrets masker on Airflow 2.
try:
    from airflow.sdk.log import mask_secret
except ImportError:  # Airflow 2.10, 2.11
    from airflow.utils.log.secrets_masker import mask_secret

# The names whose values Airflow itself hides in logs and the UI: a shared module from 3.1 on, the
# task SDK's execution-time module on 3.0, ``airflow.utils.log`` on Airflow 2.
try:
    from airflow.sdk._shared.secrets_masker.secrets_masker import should_hide_value_for_key
except ImportError:
    try:  # Airflow 3.0
        from airflow.sdk.execution_time.secrets_masker import should_hide_value_for_key
    except ImportError:
        try:  # Airflow 2.10, 2.11
            from airflow.utils.log.secrets_masker import should_hide_value_for_key
        except ImportError:  # pragma: no cover - a private module moved again: Airflow's own list of words
            _SENSITIVE = re.compile(r"pass|secret|token|api_?key|private|credential|auth", re.IGNORECASE)

            def should_hide_value_for_key(name) -> bool:
                return isinstance(name, str) and bool(_SENSITIVE.search(name))


def object_storage_path(url: str, conn_id: str | None):
    """Airflow's object storage path (remote log folders): ``airflow.sdk`` on Airflow 3,
    ``airflow.io.path`` on Airflow 2.8+. Imported when used: it loads fsspec."""
    try:
        from airflow.sdk import ObjectStoragePath
    except ImportError:  # Airflow 2.10, 2.11
        from airflow.io.path import ObjectStoragePath
    return ObjectStoragePath(url, conn_id=conn_id)


def skip_own_downstream(context, task_ids: list[str], *, ends_task: bool = True) -> bool:
    """Mark these direct downstream tasks of the running task, in its own map index, skipped.

    The scheduler then never starts them. Airflow 2 reads the skip list from an XCom of the parent
    (``NotPreviouslySkippedDep``, which also covers tasks of a mapped group not expanded yet).
    Airflow 3 skips them when the task ends with ``DownstreamTasksSkipped``, so on Airflow 3 this
    must be the task's last call: it raises. That ending pushes no return value, though, so a task
    whose value is a mapped task's input passes ``ends_task=False``: it leaves the same XCom as on
    Airflow 2, which Airflow 3's scheduler honours for an unmapped operator whose class sets
    ``inherits_from_skipmixin``.

    Returns True when the skip went through the XCom (the caller may then mark the waiting task
    instances skipped at once, see :func:`starship_dags.operators.skipping.skip_waiting_now`).
    """
    if not task_ids:
        return False
    ti = context["ti"]
    if AIRFLOW_MAJOR >= 3 and ends_task:
        raise DownstreamTasksSkipped(tasks=[(task_id, ti.map_index) for task_id in task_ids])
    ti.xcom_push(key=SKIPMIXIN_KEY, value={SKIPMIXIN_SKIPPED: list(task_ids)})
    return AIRFLOW_MAJOR < 3


def is_sensitive_key(name: str) -> bool:
    """True for variable keys and extra fields whose values must never be logged."""
    return bool(should_hide_value_for_key(name))


__all__ = [
    "AIRFLOW_MAJOR",
    "AIRFLOW_VERSION",
    "AirflowException",
    "AirflowSkipException",
    "BaseOperator",
    "DAG",
    "Param",
    "TaskGroup",
    "is_sensitive_key",
    "mask_secret",
    "object_storage_path",
    "skip_own_downstream",
    "task_group",
]
