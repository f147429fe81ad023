"""What parsing the DAG files costs: Airflow's DAG processor parses them again every 30 seconds,
and each task process once. The hook module imports the HTTP provider, which pulls in aiohttp
(about half of a parse): it is imported when a task runs, not when the files are parsed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("aiohttp", "airflow.providers.http.hooks.http", "starship_dags.hooks.starship")


def test_parsing_the_dag_files_does_not_import_the_http_hook():
    code = (
        "import runpy, sys\n"
        "dags = [runpy.run_path(f)['dag'] for f in ('dags/starship_migration.py', 'dags/starship_sync.py')]\n"
        "print(len(dags), sorted(m for m in %r if m in sys.modules))\n" % (HEAVY,)
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "2 []", done.stdout + done.stderr[-3000:]
