"""Migrate pools, variables and connections from a source Airflow (Starship API) into this one.

Trigger it from the UI; the form explains each option. See the DAG's docs for the set-up.
"""

from starship_dags.dags import build_migration_dag

dag = build_migration_dag("starship_migration")
