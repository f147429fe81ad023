#!/usr/bin/env bash
# Starts a local Airflow 2.11 source and Airflow 3.3 target on loopback, seeds the source,
# runs the starship_migration DAG in the target, prints its report, and stops everything.
source "$(dirname "$0")/bootstrap.sh"
exec "${UV[@]}" run --frozen python -m demo.run_demo "$@"
