"""Every DAG file this project ships imports cleanly in a DagBag, and every module of the package
imports, on every supported target minor (``starship_dags.versions.TARGETS``), offline.

The parse runs in a network namespace of its own (``unshare --net``): no interface but a downed
loopback, so a DAG file that reached for the network or the metadata database at parse time fails.
"""

from __future__ import annotations

import json
import shutil

import pytest

from starship_dags.versions import TARGETS
from tests.integration import rig

FOLDERS = {"dags": rig.ROOT / "dags", "astro/dags": rig.ROOT / "astro" / "dags"}
MIGRATION_DAGS = {"starship_migration", "starship_sync"}
SHIPPED = {*MIGRATION_DAGS, "starship_reset_target"}

PARSE = r"""
import importlib, json, pkgutil, sys
import starship_dags
modules = {}
for info in pkgutil.walk_packages(starship_dags.__path__, "starship_dags."):
    try:
        importlib.import_module(info.name)
        modules[info.name] = None
    except Exception as err:
        modules[info.name] = f"{type(err).__name__}: {err}"
try:
    from airflow.dag_processing.dagbag import DagBag  # Airflow 3.3
except ImportError:
    from airflow.models.dagbag import DagBag
found = {}
for folder in sys.argv[1:]:
    bag = DagBag(folder)
    found[folder] = {
        "dags": sorted(bag.dag_ids),
        "errors": {path: text[-1500:] for path, text in bag.import_errors.items()},
        "tasks": {dag_id: sorted(t.task_id for t in bag.dags[dag_id].tasks) for dag_id in bag.dag_ids},
        "schedules": {dag_id: str(getattr(bag.dags[dag_id], "timetable", None).__class__.__name__)
                      for dag_id in bag.dag_ids},
        "max_active_runs": {dag_id: bag.dags[dag_id].max_active_runs for dag_id in bag.dag_ids},
    }
print("RESULT " + json.dumps({"bags": found, "modules": modules}))
"""


def test_astro_dags_are_the_shipped_dags():
    for name in ("starship_migration.py", "starship_sync.py", "starship_reset_target.py"):
        assert (FOLDERS["astro/dags"] / name).read_text() == (FOLDERS["dags"] / name).read_text(), name


@pytest.mark.parametrize("version", TARGETS)
def test_dagbag_imports_offline(envs, version, tmp_path):
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is needed to parse without network")
    env = envs[version]
    environ = {
        "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        # A real database URL that cannot be reached from the empty network namespace.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": rig.sql_url("sd_unreachable"), "PYTHONWARNINGS": "ignore",
    }
    proc = rig.run(["unshare", "--net", env.python, "-c", PARSE, *map(str, FOLDERS.values())], env=environ,
                   timeout=300)
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    modules, found = result["modules"], result["bags"]
    assert len(modules) >= 20 and "starship_dags.hooks.starship" in modules, sorted(modules)
    assert {name: error for name, error in modules.items() if error} == {}, f"on Airflow {version}"
    for label, folder in FOLDERS.items():
        bag = found[str(folder)]
        assert bag["errors"] == {}, f"{label} on Airflow {version}: {bag['errors']}"
        assert set(bag["dags"]) == SHIPPED, bag["dags"]
        for dag_id in MIGRATION_DAGS:
            tasks = bag["tasks"][dag_id]
            assert {"start", "report", "history.dag_runs", "history.validate",
                    "validate_settings", "settings.environment"} <= set(tasks), tasks
            assert bag["max_active_runs"][dag_id] == 1
        assert "cutover_pause_source" in bag["tasks"]["starship_migration"]
        assert bag["schedules"]["starship_sync"] != "NullTimetable"
        assert bag["schedules"]["starship_migration"] == "NullTimetable"
        assert bag["tasks"]["starship_reset_target"] == ["reset"]
