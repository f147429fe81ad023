"""History made by a source's real scheduler: the DAGs of ``source_dags/history_dags.py`` that run
(``history_seed.REAL_DAGS``), with a mapped task, a retried task and a failed run triggered with a
nested unicode ``conf``. About 20 s on any supported Airflow version."""

from __future__ import annotations

import json
import shutil
import time

from tests.integration import rig
from tests.integration.history_seed import REAL_DAGS

#: Runs the scheduler makes: scheduled runs (catchup), and those triggered with a conf.
TRIGGERED = {
    "hist_mapped": {"nested": {"ключ": {"deep": [1, {"x": "日本"}]}}},
    "hist_failing": {"ü": ["✓", 1, None], "emoji": "🚀"},
}
EXPECTED_RUNS = {"hist_mapped": 4, "hist_retry": 2, "hist_failing": 1}


def make(server: rig.AirflowServer, *, timeout: float = 420) -> None:
    """Run REAL_DAGS on the server's own scheduler until every expected run has finished, then stop
    the scheduler and pause the DAGs (nothing runs while a migration reads the history)."""
    shutil.copy(rig.HISTORY_DAGS, server.dags_folder)
    server.cli("dags", "reserialize")
    pause(server, False)
    for dag_id, conf in TRIGGERED.items():
        server.cli("dags", "trigger", dag_id, "-c", json.dumps(conf))
    scheduler = server.start_scheduler()
    done: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            done = dict(server.sql(
                "SELECT dag_id, count(*) FROM dag_run WHERE state IN ('success', 'failed') GROUP BY dag_id"))
            if all(done.get(d, 0) >= n for d, n in EXPECTED_RUNS.items()):
                break
            time.sleep(2)
    finally:
        server.stop_processes(scheduler)
    assert all(done.get(d, 0) >= n for d, n in EXPECTED_RUNS.items()), (server.name, done)
    pause(server, True)


def pause(server: rig.AirflowServer, paused: bool) -> None:
    """What ``airflow dags pause``/``unpause`` write (the scheduler reads the flag from the database),
    in one statement: each ``airflow`` command costs seconds of CPU to start."""
    changed = server.sql("UPDATE dag SET is_paused = %s WHERE dag_id = ANY(%s) RETURNING dag_id", (paused, list(REAL_DAGS)))
    assert sorted(row[0] for row in changed) == sorted(REAL_DAGS), (server.name, changed)
