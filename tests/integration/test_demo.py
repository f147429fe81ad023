"""The demo, end to end: every step printed, every count equal, exit code 0 (a failed check is 1)."""

from __future__ import annotations

import re

from demo import run_demo


def test_the_demo_tells_the_whole_story(capsys):
    code = run_demo.main([])
    out = capsys.readouterr().out
    steps = [line for line in out.splitlines() if line.startswith("== ")]
    assert [s[:5] for s in steps] == ["== 1.", "== 2.", "== 3.", "== 4."], out[-3000:]
    assert code == 0, out[-5000:]
    # the report, per resource and per DAG
    for resource in ("pools", "variables", "connections", "dag_runs", "task_instances", "task_instance_history",
                     "xcoms", "task_logs"):
        assert re.search(rf"^{resource}\s", out, re.M), resource
    # the side by side counts, equal and not zero
    for what in ("runs", "task instances", "retry history (earlier tries)", "XComs", "logs readable (unmapped tries)"):
        source, target = re.search(rf"^  {re.escape(what)}\s+(\d+)\s+(\d+)$", out, re.M).groups()
        assert source == target != "0", (what, source, target)
    assert "second try works" in out  # one log as the target's own log route serves it
    assert "runs written by the sync, per DAG: {" in out and "'hist_failing': 1" in out
    assert re.search(r"nothing new: \d+ requests to the source for \d+ DAGs", out)
    assert "FAILED" not in out and run_demo.SECRET not in out
    assert "every step succeeded" in out
