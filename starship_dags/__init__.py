"""Migrate an Airflow deployment's metadata into another Airflow through the Starship API."""

from __future__ import annotations

__version__ = "0.1.0"

CONN_TYPE = "starship"

#: How the Airflow connection form shows a Starship connection. Airflow 2 asks the hook
#: (``get_ui_field_behaviour``); Airflow 3.2+ reads it from the provider info below.
CONNECTION_FORM = {
    "hidden_fields": ["schema", "port"],
    "relabeling": {
        "host": "Airflow URL",
        "login": "Username (empty when using an API token)",
        "password": "Password or API token",
    },
    "placeholders": {
        "host": "https://my-airflow.example.com (the web UI's URL, path prefix included)",
        "login": "admin",
        "password": "password, or an Astro / Airflow API token",
        "extra": '{"connect_timeout": 10, "read_timeout": 120, "retries": 8, "verify": true}',
    },
}


def get_provider_info() -> dict:
    """Airflow provider entry point: declares the ``starship`` connection type and its hook."""
    return {
        "package-name": "starship-dags",
        "name": "Starship DAGs",
        "description": "Operators and DAGs that migrate Airflow metadata through the Starship API.",
        "versions": [__version__],
        "connection-types": [
            {
                "connection-type": CONN_TYPE,
                "hook-class-name": "starship_dags.hooks.starship.StarshipHook",
                "hook-name": "Starship (Airflow migration)",
                "ui-field-behaviour": {key.replace("_", "-"): value for key, value in CONNECTION_FORM.items()},
            }
        ],
    }
