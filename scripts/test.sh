#!/usr/bin/env bash
# Runs every test: unit tests, then integration tests against real Airflow servers (the declared version matrix).
# Extra arguments go to pytest (e.g. scripts/test.sh tests/unit -q).
source "$(dirname "$0")/bootstrap.sh"
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  # Debian's Chromium, for the browser test (the trigger form in the Airflow 3 UI).
  echo "installing Debian's chromium for the browser test" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null; }
fi
# Two test processes (pytest-xdist), one per core: the tests mostly wait on servers, so one process
# keeps one core busy. Groups keep each set of shared servers in one process (tests/integration/conftest.py).
# STARSHIP_DAGS_TEST_WORKERS=0 runs everything in this process.
workers="${STARSHIP_DAGS_TEST_WORKERS:-2}"
parallel=()
if [ "$workers" != 0 ]; then
  parallel=(-n "$workers" --dist loadgroup)
fi
set +e
"${UV[@]}" run --frozen pytest -ra "${parallel[@]}" "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing on purpose" >&2
  exit 1
fi
exit "$rc"
