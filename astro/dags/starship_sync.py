"""The scheduled incremental sync into this Airflow: the same copy as ``starship_migration``, every
30 minutes (``STARSHIP_SYNC_SCHEDULE``, a cron expression, changes it), with conflict policy
``overwrite``, until the cutover. Pause it after the cutover."""

from starship_dags.dags import SYNC_DAG_ID, build_migration_dag

dag = build_migration_dag(SYNC_DAG_ID, sync=True)
