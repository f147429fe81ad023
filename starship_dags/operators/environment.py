"""Connections and variables the source defines in its environment, outside its database.

``AIRFLOW_CONN_*`` and ``AIRFLOW_VAR_*`` environment variables are not in the metadata database,
so no migration can copy them. This task lists their **names** (never values) so the report can
say which ones to set on the target. Starship's ``/env_vars`` answer holds every value of the
source's environment, secrets included: only its keys are kept, and nothing of it is logged.
"""

from __future__ import annotations

from typing import Any

from starship_dags.exceptions import StarshipError
from starship_dags.operators.base import MigrationOperator
from starship_dags.report import Summary

RESOURCE = "environment"
PREFIXES = ("AIRFLOW_CONN_", "AIRFLOW_VAR_")
NOT_MIGRATED = "not migrated: set these on the target"


def environment_only_names(environment: dict[str, Any]) -> list[str]:
    return sorted(name for name in environment if name.upper().startswith(PREFIXES))


class SourceEnvironmentOperator(MigrationOperator):
    resource = RESOURCE

    def migrate(self, summary: Summary, context: Any) -> None:
        try:
            names = environment_only_names(self.source_hook.env_vars() or {})
        except StarshipError as err:  # the listing is advice; a source that refuses it fails nothing
            summary.notes.append(f"could not list the source's environment variables: {err}")
            return
        for name in names:
            summary.add("skipped", name)
        if names:
            summary.notes.append(f"defined in the source's environment, {NOT_MIGRATED}: {', '.join(names)}")
        self.log.info("%d connection/variable environment variable(s) on the source", len(names))


__all__ = ["NOT_MIGRATED", "SourceEnvironmentOperator", "environment_only_names"]
