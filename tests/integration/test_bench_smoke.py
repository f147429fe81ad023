"""The benchmark command at a smoke size: every phase runs on real servers and checks its own parity.

The full size (20 DAGs x 500 runs x 5 tasks) is not part of the test run: ``bash scripts/bench.sh``."""

from __future__ import annotations

import json

from bench import run

DAGS, RUNS, TASKS = 2, 12, 2


def test_benchmark_smoke(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = run.main(["--dags", str(DAGS), "--runs", str(RUNS), "--tasks", str(TASKS), "--pools", "3",
                     "--variables", "3", "--connections", "3", "--threads", "2", "--rss-sizes", "60",
                     "--celery-concurrency", "4", "--starship-attempts", "1", "--repeat", "2", "--artifact-dags", "2",
                     "--artifact-runs", "6", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    results = json.loads(out.read_text())
    seeded = results["generated"]
    rows = seeded["runs"] + seeded["tis"] + seeded["tries"]
    assert seeded["runs"] == DAGS * RUNS and seeded["tis"] == DAGS * RUNS * TASKS

    assert [(c["rows"], c["lean"]) for c in results["ceiling"]] == [(rows, False), (rows, True)]
    pairs = results["pairs"]  # the ceiling's last run and ours, then one more of each
    assert len(pairs) == 2 and all(p["ours_state"] == "success" and p["ours_parity"] == "equal" for p in pairs), pairs
    assert pairs[0]["ceiling_seconds"] == results["ceiling"][0]["seconds"], pairs
    for key in ("ours_local", "ours_celery"):
        assert results[key]["state"] == "success", results[key]
        assert results[key]["parity"] == "equal", results[key]
        assert results[key]["rows"] == rows, results[key]
        assert results[key]["peak_rss_mb"] and results[key]["source_requests"] > 0

    idle = results["idle_sync"]
    assert idle["idle"]["state"] == "success" and idle["created_or_updated"] == 0, idle
    assert idle["dags"] == DAGS and idle["max_history_calls_of_one_dag"] <= 2, idle

    starship = results["starship_operator"]
    assert starship["largest_limit"] == RUNS, starship  # a history this small fits in one request
    assert starship["ours"]["parity"] == "equal" and starship["rows"] == DAGS * RUNS * (1 + TASKS)

    memory, = results["memory"]
    assert memory["state"] == "success" and memory["task_instances"] == 60 and memory["peak_rss_mb"], memory
    full = memory["full_comparison"]  # the same DAG again, compared in full: nothing left to write
    assert full["state"] == "success" and full["created"] == 0 and full["peak_rss_mb"], full

    art = results["artifacts"]  # XComs and logs: two pairs of the artifact ceiling and ours, then everything
    assert art["generated"]["xcoms"] > 0 and art["generated"]["logs"] >= 2 * 6 * TASKS, art["generated"]
    assert len(art["pairs"]) == 2 and all(p["parity"] == "equal" and p["ours_state"] == "success"
                                          for p in art["pairs"]), art["pairs"]
    assert all(p["ceiling"]["logs"] == art["generated"]["logs"] for p in art["pairs"]), art["pairs"]
    assert art["whole"]["state"] == "success" and art["whole"]["parity"] == "equal", art["whole"]

    for measure in ("ours / artifact ceiling", "XComs, source requests per task instance",
                    "whole migration, every resource", "raw ceiling, 2 thread(s)", "raw ceiling, 2 thread(s), NULL columns left out",
                    "ours / raw ceiling", "the median of 2 alternated pairs",
                    "ours / raw ceiling with NULL columns left out", "ours, CeleryExecutor (2 workers)",
                    "ours / Starship operator", "peak task RSS, 60 task instances",
                    "peak task RSS, rerun of 60 with a full comparison", "idle sync, source requests per DAG"):
        assert measure in printed, printed
