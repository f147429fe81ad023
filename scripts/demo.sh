#!/usr/bin/env bash
# The demo (demo/run_demo.py): a local Airflow 2.11 source with scheduler-made history and an
# Airflow 3.3 target, the migration with every resource, its report, a side-by-side proof, then the
# scheduled sync copying a new run and finding nothing more. --keep leaves both servers up.
source "$(dirname "$0")/bootstrap.sh"
export PYTHONUNBUFFERED=1  # every line as it is printed, also into a pipe or a file
exec "${UV[@]}" run --frozen python -m demo.run_demo "$@"
