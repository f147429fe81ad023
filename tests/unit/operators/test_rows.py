"""History rows: key sets that hold each string once, the source's task instances read by runs."""

from __future__ import annotations



def test_keys_of_runs_hold_each_string_once_and_only_the_runs_asked_for():
    from starship_dags.operators.rows import keys_of_runs
    from starship_dags.translate import TASK_INSTANCE, ti_natural_key

    runs = {"run_a", "run_b"}
    # every row its own string objects, as parsed JSON has them
    rows = [{"dag_id": "".join("dag"), "run_id": "".join(["run_", r]), "task_id": "".join(["task_", t]), "map_index": m}
            for r in "abc" for t in "xy" for m in (-1, 0)]
    keys = keys_of_runs(iter(rows), TASK_INSTANCE, runs)
    assert keys == {ti_natural_key(r) for r in rows if r["run_id"] in runs} and len(keys) == 8
    shared = {(id(part), part) for key in keys for part in key if isinstance(part, str)}
    assert len(shared) == 5  # one dag id, the two run ids, two task ids
    assert {part for _, part in shared} >= runs and all(
        any(part is run_id for run_id in runs) for key in keys for part in key[1:2])


class _ShiftingTis:
    """A source whose DAG starts a run after the first page is read: later pages, by offset, repeat
    the run at the previous page's end (Starship orders newest first)."""

    airflow_major = 2

    def __init__(self, runs, tasks):
        self.runs, self.tasks, self.calls = list(runs), tasks, 0

    def get_task_instances(self, dag_id, limit, offset):
        self.calls += 1
        if self.calls == 2:
            self.runs.insert(0, "started_meanwhile")
        page = self.runs[offset:offset + limit]
        return {"task_instances": [{"dag_id": "d", "run_id": r, "task_id": t, "map_index": -1}
                                   for r in page for t in self.tasks], "dag_run_count": len(self.runs)}


def test_source_task_instances_take_a_run_met_twice_from_its_first_page():

    from starship_dags.operators.rows import source_task_instances

    source = _ShiftingTis([f"r{i:03d}" for i in range(150)], ["t", "u"])
    wanted = {"r000", "r099", "r100", "r149"}  # r099 ends the first page and leads the second
    rows = list(source_task_instances(source, "d", wanted, estimate=None, depth=0, total=150))
    assert sorted((r["run_id"], r["task_id"]) for r in rows) == [(r, t) for r in sorted(wanted) for t in "tu"]
    assert source.calls == 2
