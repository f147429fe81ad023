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


def _pair(ceiling_seconds: float, ours_seconds: float, parity: str = "equal") -> dict:
    return {"ceiling_seconds": ceiling_seconds, "ceiling_rows_per_second": 1000 / ceiling_seconds,
            "ours_seconds": ours_seconds, "ours_rows_per_second": 1000 / ours_seconds, "ours_state": "success",
            "ours_parity": parity, "ratio": round(ceiling_seconds / ours_seconds, 3)}


def test_alternated_pairs_are_judged_by_their_median_ratio():
    results = {
        # the ceiling phase alone would give 0.95: the pairs' median is judged instead
        "ceiling": [{"threads": 4, "lean": False, "rows": 1000, "seconds": 1.0, "requests": 4, "rows_per_second": 1000.0}],
        "ours_local": {"rows_per_second": 950.0, "rows": 1000, "seconds": 1.05, "source_requests": 3,
                       "target_requests": 4, "parity": "equal", "state": "success"},
        "pairs": [_pair(19.0, 20.0), _pair(18.0, 21.0), _pair(17.0, 20.0)],
    }
    line = {row.split(" | ")[0].strip(): row for row in run.table(results).splitlines()}["ours / raw ceiling"]
    assert "0.86, the median of 3 alternated pairs: 0.95 (20.0 s / 19.0 s), 0.86" in line
    assert line.rstrip().endswith("NO")
    results["pairs"][1] = _pair(18.0, 19.5)
    line = {row.split(" | ")[0].strip(): row for row in run.table(results).splitlines()}["ours / raw ceiling"]
    assert line.split(" | ")[1].startswith("0.92,") and line.rstrip().endswith("yes")
    results["pairs"][2] = _pair(19.0, 19.5, parity="DIFFERENT: x")  # a fast run that lost rows proves nothing
    line = {row.split(" | ")[0].strip(): row for row in run.table(results).splitlines()}["ours / raw ceiling"]
    assert "a run of ours was not complete" in line and line.rstrip().endswith("NO")


def test_the_pairs_alternate_the_ceiling_and_ours(mocker):
    """``--repeat 3``: the ceiling phase ends with the most threads as served, then ours; two more
    pairs follow, each a raw ceiling run then ours, each run of ours checked for parity."""
    order = []
    bench = run.Bench.__new__(run.Bench)
    bench.args = run.parse_args(["--threads", "1,4", "--repeat", "3"])
    bench.shape = mocker.Mock(dag_ids=["a"])
    bench.results = {}
    mocker.patch.object(bench, "reset_target")
    seconds = iter([40.0, 16.0, 19.0, 18.0, 20.0, 20.0, 19.5, 19.5])

    def ceiling_run(threads, lean):
        order.append(("ceiling", threads, lean))
        s = next(seconds)
        return {"threads": threads, "lean": lean, "rows": 1000, "seconds": s, "requests": 1, "rows_per_second": 1000 / s}

    def run_ours(label, conf):
        order.append(("ours", label))
        return run.OurRun(label=label, state="success", seconds=next(seconds) + 1, rows=1000, source_requests=1,
                          target_requests=1, peak_rss_mb=None, start_rss_mb=None, tasks=1, task_seconds=1,
                          work_seconds=1, work_cpu_seconds=1)

    mocker.patch.object(bench, "ceiling_run", side_effect=ceiling_run)
    mocker.patch.object(bench, "run_ours", side_effect=run_ours)
    mocker.patch.object(bench, "check_parity", side_effect=lambda r, d: setattr(r, "parity", "equal"))
    bench.raw_ceiling()
    bench.ours_local()
    assert order == [("ceiling", 1, False), ("ceiling", 4, True), ("ceiling", 4, False), ("ours", "local"),
                     ("ceiling", 4, False), ("ours", "local_2"), ("ceiling", 4, False), ("ours", "local_3")]
    assert [(c["threads"], c["lean"]) for c in bench.results["ceiling"]] == [(1, False), (4, False), (4, True)]
    assert [(p["ceiling_seconds"], p["ours_seconds"]) for p in bench.results["pairs"]] == [
        (19.0, 19.0), (20.0, 21.0), (19.5, 20.5)]
    assert bench.results["ours_local"]["label"] == "local"
