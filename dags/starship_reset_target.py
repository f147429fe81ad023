"""Start over for some DAGs: delete their migrated history from this Airflow (the target) only, so
the next ``starship_migration`` copies it whole. Type the DAG ids twice; a dry run is the default."""

from starship_dags.dags import RESET_DAG_ID, build_reset_dag

dag = build_reset_dag(RESET_DAG_ID)
