"""What the benchmark reads off the machine: requests seen by the servers, and CPU seconds per
process group (where the time goes)."""

from __future__ import annotations

import os
import resource
from pathlib import Path

from tests.integration import rig

_TICKS = os.sysconf("SC_CLK_TCK")


def access_lines(server: rig.AirflowServer) -> int:
    """Requests an Airflow 2 webserver has answered so far (its access log has one line each)."""
    return server.requests_seen()


def _cpu_totals() -> dict[object, float]:
    """CPU seconds (with reaped children) per process group, and of every ``postgres`` process:
    PostgreSQL puts each backend in a process group of its own."""
    out: dict[object, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        utime, stime, cutime, cstime = (int(fields[i]) for i in (11, 12, 13, 14))
        seconds = (utime + stime + cutime + cstime) / _TICKS
        key = POSTGRES if text[text.index("(") + 1:text.rindex(")")] == "postgres" else int(fields[2])
        out[key] = out.get(key, 0.0) + seconds
    return out


POSTGRES = "postgres"


class CpuMeter:
    """CPU seconds spent by named process groups between ``start()`` and ``stop()``."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups: dict[str, list] = {name: pgids for name, pgids in groups.items() if pgids}
        self.groups["postgresql"] = [POSTGRES]

    def start(self) -> None:
        self._before = _cpu_totals()
        self._self_before = _own_cpu()

    def stop(self) -> dict[str, float]:
        after = _cpu_totals()
        spent = {name: sum(after.get(g, 0.0) - self._before.get(g, 0.0) for g in pgids)
                 for name, pgids in self.groups.items()}
        spent["benchmark client"] = _own_cpu() - self._self_before
        return {name: round(seconds, 1) for name, seconds in spent.items()}


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def pgids(procs) -> list[int]:
    return [proc.pid for proc in procs if proc.poll() is None]
