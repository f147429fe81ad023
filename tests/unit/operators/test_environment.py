"""The source's environment-only connections and variables: names only."""

from __future__ import annotations

import json

from starship_dags.operators.environment import (
    SourceEnvironmentOperator,
    environment_only_names,
)
from starship_dags.report import Summary


def test_environment_lists_names_only():
    environ = {"AIRFLOW_CONN_DB": "postgres://u:SECRET@h", "AIRFLOW_VAR_KEY": "SECRET", "AIRFLOW__CORE__X": "1",
               "PATH": "/bin"}
    assert environment_only_names(environ) == ["AIRFLOW_CONN_DB", "AIRFLOW_VAR_KEY"]

    class Source:
        def env_vars(self):
            return environ

    op = SourceEnvironmentOperator(task_id="environment")
    op.__dict__["source_hook"] = Source()
    summary = Summary(resource="environment")
    op.migrate(summary, {})
    assert summary.skipped == 2 and "SECRET" not in json.dumps(summary.as_dict())
    assert "not migrated: set these on the target" in summary.notes[0]
