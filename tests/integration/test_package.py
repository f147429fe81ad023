"""The package as Airflow sees it: provider entry point, connection form, DAG files parse offline."""

from __future__ import annotations

import json

import pytest

from tests.integration import rig

PROVIDER_PROBE = r"""
import json
from airflow.providers_manager import ProvidersManager
pm = ProvidersManager()
hook = pm.hooks.get("starship")
behaviour = pm.field_behaviours.get("starship") or {}
print(json.dumps({
    "provider": "starship-dags" in pm.providers,
    "hook": getattr(hook, "hook_class_name", None),
    "relabeling": behaviour.get("relabeling", {}),
}))
"""

DAGBAG_PROBE = r"""
import json, socket
def no_network(*args, **kwargs):
    raise RuntimeError("DAG parsing tried to open a network connection")
socket.socket.connect = no_network
socket.create_connection = no_network
from airflow.models import DagBag
bag = DagBag(dag_folder=%r)
print(json.dumps({"errors": {k: str(v)[-500:] for k, v in bag.import_errors.items()}, "dags": sorted(bag.dag_ids)}))
"""


@pytest.mark.parametrize("version", ["2.11", "3.3"])
def test_connection_type_is_registered(envs, version, tmp_path):
    server = rig.AirflowServer(f"probe{version}", envs[version])
    try:
        found = json.loads(server.python(PROVIDER_PROBE).strip().splitlines()[-1])
    finally:
        server.stop(drop=False)
    assert found["provider"] is True
    assert found["hook"] == "starship_dags.hooks.starship.StarshipHook"
    assert found["relabeling"]["host"] == "Airflow URL"
    assert found["relabeling"]["password"] == "Password or API token"


@pytest.mark.parametrize("version", ["2.11", "3.3"])
def test_dag_files_import_without_errors_or_network(envs, version):
    server = rig.AirflowServer(f"dagbag{version}", envs[version])
    try:
        server.create_database()
        found = json.loads(server.python(DAGBAG_PROBE % str(rig.ROOT / "dags")).strip().splitlines()[-1])
    finally:
        server.stop()
    assert found["errors"] == {}
    assert "starship_migration" in found["dags"]
