"""Migrate pools, variables, connections and DAG history from a source Airflow (Starship API) into
this one, and optionally cut DAGs over. Trigger it from the UI; the form explains each option and
the DAG's docs explain the set-up."""

from starship_dags.dags import MIGRATION_DAG_ID, build_migration_dag

dag = build_migration_dag(MIGRATION_DAG_ID)
