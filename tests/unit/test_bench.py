"""The benchmark's own arithmetic: the ceiling client's request bodies and the table's verdicts."""

from __future__ import annotations

import json

from bench import ceiling, run


def test_ceiling_bodies_stay_under_the_limit_and_keep_every_item():
    items = [{"run_id": f"r{n}", "text": "x" * (n % 700)} for n in range(6000)]
    bodies = ceiling._batches(items, "task_instances")
    assert len(bodies) > 1
    assert all(len(body) <= ceiling.MAX_BODY for body in bodies)
    assert [item for body in bodies for item in json.loads(body)["task_instances"]] == items


def test_table_judges_each_target():
    results = {
        "ceiling": [{"threads": 4, "lean": False, "rows": 1000, "seconds": 1.0, "requests": 4, "rows_per_second": 1000.0},
                    {"threads": 4, "lean": True, "rows": 1000, "seconds": 0.5, "requests": 4, "rows_per_second": 2000.0}],
        "ours_local": {"rows_per_second": 950.0, "rows": 1000, "seconds": 1.05, "source_requests": 3,
                       "target_requests": 4, "parity": "equal", "state": "success"},
        "ours_celery": {"rows_per_second": 900.0, "rows": 1000, "seconds": 1.1, "parity": "DIFFERENT: x",
                        "state": "success"},
        "memory": [{"task_instances": 10_000, "peak_rss_mb": 140.0, "start_rss_mb": 130.0},
                   {"task_instances": 100_000, "peak_rss_mb": 300.0, "start_rss_mb": 130.0,
                    "full_comparison": {"peak_rss_mb": 160.0, "state": "success", "seconds": 40.0, "created": 0}}],
        "idle_sync": {"source_requests_per_dag": 1.5, "source_requests": 30, "dags": 20,
                      "max_history_calls_of_one_dag": 1, "idle": {"seconds": 21.4, "tasks": 30}},
    }
    lines = {line.split(" | ")[0].strip(): line for line in run.table(results).splitlines()}
    assert lines["ours / raw ceiling"].rstrip().endswith("yes")  # against the rows as served: 0.95
    assert "0.47" in lines["ours / raw ceiling with NULL columns left out"]  # shown, not judged
    assert "2000 rows/s" in lines["raw ceiling, 4 thread(s), NULL columns left out"]
    assert lines["ours, CeleryExecutor (2 workers)"].rstrip().endswith("NO")  # parity differs
    assert lines["peak task RSS, 100,000 task instances in one DAG"].rstrip().endswith("NO")
    assert lines["RSS growth, smallest to largest"].rstrip().endswith("NO")
    full = lines["peak task RSS, rerun of 100,000 with a full comparison"]
    assert "+20.0 MB against 10,000" in full and full.rstrip().endswith("yes")
    results["memory"][-1]["full_comparison"]["state"] = "failed"  # a failed rerun proves nothing
    lines = {line.split(" | ")[0].strip(): line for line in run.table(results).splitlines()}
    assert lines["peak task RSS, rerun of 100,000 with a full comparison"].rstrip().endswith("NO")
    assert lines["idle sync, source requests per DAG"].rstrip().endswith("yes")
    assert "21 s (30 task instances ran)" in lines["idle sync, wall time"]
