"""Airflow 2 / Airflow 3 import differences for DAG authoring, in one place.

The package runs inside the *target* Airflow, which may be 2.10+ or 3.x. Airflow 3 moved the
authoring API to ``airflow.sdk``; Airflow 2 keeps it under ``airflow.models`` and friends.
"""

from __future__ import annotations

import re

from airflow import __version__ as AIRFLOW_VERSION

AIRFLOW_MAJOR = int(AIRFLOW_VERSION.split(".", 1)[0])

if AIRFLOW_MAJOR >= 3:
    from airflow.sdk import DAG, BaseOperator, Param, TaskGroup, task_group
    from airflow.sdk.exceptions import AirflowSkipException
    from airflow.sdk.log import mask_secret
else:  # Airflow 2.10 / 2.11
    from airflow.exceptions import AirflowSkipException
    from airflow.models import DAG, BaseOperator
    from airflow.models.param import Param
    from airflow.utils.log.secrets_masker import mask_secret
    from airflow.decorators import task_group
    from airflow.utils.task_group import TaskGroup

try:  # the same list of names Airflow itself hides in logs and the UI
    if AIRFLOW_MAJOR >= 3:
        from airflow.sdk._shared.secrets_masker.secrets_masker import should_hide_value_for_key
    else:
        from airflow.utils.log.secrets_masker import should_hide_value_for_key
except ImportError:  # pragma: no cover - private module moved
    _SENSITIVE = re.compile(r"pass|secret|token|api_?key|private|credential|auth", re.IGNORECASE)

    def should_hide_value_for_key(name) -> bool:
        return isinstance(name, str) and bool(_SENSITIVE.search(name))


def is_sensitive_key(name: str) -> bool:
    """True for variable keys and extra fields whose values must never be logged."""
    return bool(should_hide_value_for_key(name))


__all__ = [
    "AIRFLOW_MAJOR",
    "AirflowSkipException",
    "BaseOperator",
    "DAG",
    "Param",
    "TaskGroup",
    "is_sensitive_key",
    "mask_secret",
    "task_group",
]
