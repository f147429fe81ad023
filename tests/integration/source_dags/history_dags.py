"""DAGs the test source Airflow runs with its real scheduler, to produce realistic history.

* ``hist_mapped``: a dynamically mapped task (three map indexes) that returns XCom values and pushes
  a second key;
* ``hist_retry``: a task that fails on its first try and succeeds on the retry;
* ``hist_failing``: a run that ends failed;
* every DAG is triggered manually too, with a nested unicode ``conf``.
"""

from __future__ import annotations

import datetime

from airflow import DAG

try:
    from airflow.sdk import task
except ImportError:  # Airflow 2
    from airflow.decorators import task

START = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
DEFAULTS = {"retries": 0}

with DAG("hist_mapped", schedule="@daily", start_date=START, end_date=START + datetime.timedelta(days=2),
         catchup=True, default_args=DEFAULTS, tags=["starship-test"]):

    @task
    def numbers():
        return [1, 2, 3]

    @task
    def square(n, **context):
        print(f"squaring {n} ✓")
        context["ti"].xcom_push(key="note", value=f"{n} squared")  # a second key, beside the return value
        return {"n": n, "square": n * n, "label": "värde"}

    @task
    def total(values):
        return sum(v["square"] for v in values)

    total(square.expand(n=numbers()))

with DAG("hist_retry", schedule="@daily", start_date=START, end_date=START + datetime.timedelta(days=1),
         catchup=True, default_args={"retries": 1, "retry_delay": datetime.timedelta(seconds=1)},
         tags=["starship-test"]):

    @task
    def flaky(**context):
        if context["ti"].try_number == 1:
            raise RuntimeError("first try fails on purpose")
        print("second try works")
        return "recovered"

    @task
    def after(value):
        return value.upper()

    after(flaky())

with DAG("hist_failing", schedule=None, start_date=START, catchup=False, default_args=DEFAULTS,
         tags=["starship-test"]):

    @task
    def boom():
        raise ValueError("this run fails on purpose")

    @task
    def never(value):
        return value

    never(boom())

# Bulk DAGs: their thousands of runs are written by tests/integration/history_seed.py through
# Airflow's models; the DAGs exist so that both sides know them. Never scheduled.
for _name in ("bulk_a", "bulk_b", "bulk_c", "bulk_d"):
    with DAG(_name, schedule=None, start_date=START, catchup=False, tags=["starship-test"]):

        @task
        def extract():
            return 1

        @task
        def transform(value):
            return value

        @task
        def load(value):
            return value

        @task
        def report(value):
            return value

        report(load(transform(extract())))
