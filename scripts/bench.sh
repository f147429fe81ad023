#!/usr/bin/env bash
# The benchmark (bench/run.py): one fresh Airflow 2.11 source and target on this machine, the raw
# Starship ceiling, the migration DAG (LocalExecutor and CeleryExecutor), Starship's own operator,
# an idle sync and peak memory; prints one table. Arguments go to bench/run.py (--help).
source "$(dirname "$0")/bootstrap.sh"
exec "${UV[@]}" run --frozen python -m bench.run "$@"
