"""Migrate an Airflow deployment's metadata into another Airflow through the Starship API."""

from __future__ import annotations

__version__ = "0.1.0"

CONN_TYPE = "starship"


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
            }
        ],
    }
