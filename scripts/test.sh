#!/usr/bin/env bash
# Runs every test: unit tests, then integration tests against real Airflow 2.11 and 3.3 servers.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/unit -q).
source "$(dirname "$0")/bootstrap.sh"
set +e
"${UV[@]}" run --frozen pytest -ra "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing on purpose" >&2
  exit 1
fi
exit "$rc"
