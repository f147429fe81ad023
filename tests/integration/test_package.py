"""The package as Airflow sees it on every supported target minor: provider entry point, connection form.
(The DAG files' parse is test_dag_integrity.py.)"""

from __future__ import annotations

import json

import pytest

from starship_dags.versions import TARGETS
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
    "postgres_form": "postgres" in pm.field_behaviours,
}))
"""

@pytest.mark.parametrize("version", TARGETS)
def test_connection_type_is_registered(envs, version, tmp_path):
    server = rig.AirflowServer(f"probe{version}", envs[version])
    try:
        found = json.loads(server.python(PROVIDER_PROBE).strip().splitlines()[-1])
    finally:
        server.stop(drop=False)
    assert found["provider"] is True
    assert found["hook"] == "starship_dags.hooks.starship.StarshipHook"
    if not found["postgres_form"]:
        # Airflow 3.0 and 3.1 load no hook's form fields without the FAB provider (they log "UI
        # widgets will be missing"): the Postgres provider's hook has none there either
        assert version in ("3.0", "3.1") and found["relabeling"] == {}, found
        return
    assert found["relabeling"]["host"] == "Airflow URL"
    assert found["relabeling"]["password"] == "Password or API token"
