"""Seed data for pools, variables and connections: ordinary items and odd ones."""

from __future__ import annotations

import json

SECRETS = {
    "conn_password": "pg-Pa55word-7d1e0b",
    "http_password": "http-Pa55-c0ffee42",
    "extra_api_key": "xkey-5e1f-99aa-31cd",
    "var_password": "varpass-0b9e-5551",
    "var_secret": "varsecret-77f0-aa10",
    "var_token": "vartoken-1c2d-3e4f",
}

BIG_VALUE = "0123456789abcdef" * 12_800  # 204,800 bytes

VARIABLES = [
    {"key": "plain", "val": "plain value", "description": "an ordinary variable"},
    {"key": "path/with/slashes", "val": "slash"},
    {"key": "percent%2Fencoded%", "val": "100% sure"},
    {"key": "dotted.key.name", "val": "dots"},
    {"key": "ünïcødé_кључ_✓", "val": "välue ✓ 日本語 🚀", "description": "unicode everywhere ✓"},
    {"key": "big_value", "val": BIG_VALUE},
    {"key": "empty_value", "val": ""},
    {"key": "json_value", "val": json.dumps({"a": [1, 2, {"b": None}], "ü": "x"})},
    {"key": "db_password", "val": SECRETS["var_password"]},
    {"key": "client_secret", "val": SECRETS["var_secret"]},
    {"key": "api_token", "val": SECRETS["var_token"]},
]

POOLS = [
    {"name": "default_pool", "slots": 64, "description": "Default pool", "include_deferred": False},
    {"name": "small", "slots": 1, "description": "one at a time", "include_deferred": False},
    {"name": "pool/with slash ✓", "slots": 7, "description": "", "include_deferred": True},
]

CONNECTIONS = [
    {
        "conn_id": "pg_main", "conn_type": "postgres", "host": "db.internal", "port": 5432, "schema": "analytics",
        "login": "etl", "password": SECRETS["conn_password"],
        "extra": json.dumps({"sslmode": "require", "options": "-c search_path=x"}), "description": "main db",
    },
    {
        "conn_id": "http.api/v1", "conn_type": "http", "host": "api.example.com", "schema": "https",
        "login": "svc", "password": SECRETS["http_password"],
        "extra": json.dumps({"api_key": SECRETS["extra_api_key"], "headers": {"X-Ü": "ö"}}),
    },
    {"conn_id": "bare", "conn_type": "generic"},
    {"conn_id": "empty_strings", "conn_type": "generic", "host": "", "login": "", "extra": "{}"},
]

BAD_EXTRA = {"conn_id": "bad_extra", "conn_type": "http", "host": "h", "extra": "this is not JSON"}


def spec() -> dict:
    return {"variables": VARIABLES, "pools": POOLS, "connections": CONNECTIONS}
