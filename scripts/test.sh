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
set +e
"${UV[@]}" run --frozen pytest -ra "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing on purpose" >&2
  exit 1
fi
exit "$rc"
