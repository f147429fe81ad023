"""Real Airflow servers on loopback for tests and the demo.

* Each Airflow version gets a virtual environment built with uv and cached across runs
  (``~/.cache/starship-dags/venvs``, override with ``STARSHIP_DAGS_CACHE``).
* Each server gets its own PostgreSQL database, cloned from a migrated template database that is
  also cached across runs (``CREATE DATABASE … TEMPLATE`` takes a second; ``db migrate`` a minute).
* Servers bind 127.0.0.1 on free ports; every wait is bounded.
* Several test processes may share the cache (``pytest -n 2``): a venv is built, and this tree
  installed into it, under a file lock and only when missing or changed; a template database is
  migrated under a PostgreSQL advisory lock.

Nothing here is imported by the package itself.

Longer than the project's 400 lines: the tests, the demo and the benchmark all start servers
through this one module, in the order its sections follow (venvs, PostgreSQL, servers, a client,
seeding, running the migration DAG), each building on the one before.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from starship_dags.report import expand
from starship_dags.versions import SOURCES, STARSHIP_VERSION, TARGETS

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("STARSHIP_DAGS_CACHE", Path.home() / ".cache" / "starship-dags"))
PG_HOST = os.environ.get("STARSHIP_DAGS_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("STARSHIP_DAGS_PG_PORT", "5432"))
PG_USER = os.environ.get("STARSHIP_DAGS_PG_USER", "postgres")

STARSHIP = f"astronomer-starship=={STARSHIP_VERSION}"
HTTP_PROVIDER = "apache-airflow-providers-http==6.3.0"
#: Each supported minor (starship_dags.versions) as the tests install it: its newest patch release,
#: resolved with the packages PyPI had two days after that release (``uv --exclude-newer``), as
#: Airflow's constraint files of the release pin them. Starship is the one package taken newer.
RELEASES = {
    "2.7": ("2.7.3", "2023-11-08"),
    "2.8": ("2.8.4", "2024-03-27"),
    "2.9": ("2.9.3", "2024-07-18"),
    "2.10": ("2.10.5", "2025-02-12"),
    "2.11": ("2.11.0", "2025-05-22"),
    "3.0": ("3.0.6", "2025-08-31"),
    "3.1": ("3.1.8", "2026-03-13"),
    "3.2": ("3.2.2", "2026-05-31"),
    "3.3": ("3.3.2", "2026-09-19"),
}
STARSHIP_RELEASED = "2026-09-19"
assert set(RELEASES) == {*SOURCES, *TARGETS}, "every minor of starship_dags.versions needs a release here"
AIRFLOW_VERSIONS = {
    minor: ["apache-airflow[postgres]==" + release, STARSHIP, "apache-airflow-providers-http",
            f"--exclude-newer={day}", f"--exclude-newer-package=astronomer-starship={STARSHIP_RELEASED}"]
    for minor, (release, day) in RELEASES.items()
}
#: Environments only the benchmark uses (``bench/``, and its smoke test): Airflow 2.11 with the Celery
#: executor and Starship's own operators (the ``provider`` extra).
EXTRA_ENVS = {
    "2.11-bench": ["apache-airflow[postgres,celery]==2.11.0", "celery[redis]>=5.5,<5.7",
                   "astronomer-starship[provider]==2.10.1",
                   HTTP_PROVIDER],
}
ENV_SPECS = {**AIRFLOW_VERSIONS, **EXTRA_ENVS}
ADMIN_USER = "admin"
ADMIN_PASSWORD = "Adm1n-pw-5f3c9a"  # distinctive, so a leak into a log is detectable
VIEWER_USER = "viewer"  # Airflow 2: may log in but not read the configuration, so not use Starship
VIEWER_PASSWORD = "V1ewer-pw-0c8d2e"
MIGRATION_DAG = ROOT / "dags" / "starship_migration.py"
SYNC_DAG = ROOT / "dags" / "starship_sync.py"
RESET_TARGET_DAG = ROOT / "dags" / "starship_reset_target.py"
ASTRO_LOG_MOUNT = Path("/usr/local/airflow/logs")  # where Starship's /task_log reads and writes
HISTORY_DAGS = ROOT / "tests" / "integration" / "source_dags" / "history_dags.py"


def log(msg: str) -> None:
    print(f"[rig {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def uv() -> str:
    found = os.environ.get("UV") or shutil.which("uv")  # `uv run` sets UV to its own binary
    if found:
        return found
    candidate = Path(sys.executable).parent / "uv"
    if candidate.exists():
        return str(candidate)
    raise RuntimeError("uv is not installed; run the tests through scripts/test.sh")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(cmd: list[str], *, env: dict[str, str] | None = None, timeout: float = 900, check: bool = True,
        input: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        cmd, env=env, timeout=timeout, capture_output=True, text=True, input=input, cwd=cwd,
    )
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"command failed ({proc.returncode}): {' '.join(cmd[:6])}…\n--- stdout\n{proc.stdout[-4000:]}"
            f"\n--- stderr\n{proc.stderr[-6000:]}"
        )
    return proc


# --------------------------------------------------------------------------- virtual environments

#: Part of a venv's cache key: bump it when the way venvs are built changes. They are built with
#: compiled bytecode, as an Airflow image is. Where PYTHONDONTWRITEBYTECODE is set (it is on this
#: project's development machine), a venv without it compiles every module it imports in every
#: process: each task process and DAG-file parse then costs seconds of CPU that a deployment does not.
VENV_LAYOUT = "bytecode"


@dataclass
class AirflowEnv:
    version: str  # a key of ENV_SPECS: a minor such as "2.9", or "2.11-bench"
    path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.path = CACHE / "venvs" / f"airflow-{self.version}-{self.spec_hash()}"

    def spec_hash(self) -> str:
        return hashlib.sha256(json.dumps([ENV_SPECS[self.version], VENV_LAYOUT]).encode()).hexdigest()[:10]

    @property
    def python(self) -> str:
        return str(self.path / "bin" / "python")

    @property
    def airflow(self) -> str:
        return str(self.path / "bin" / "airflow")

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    @contextlib.contextmanager
    def _locked(self):
        """Held while this venv is built or this tree installed into it (other test processes wait)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.parent / f".{self.path.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def ensure(self) -> AirflowEnv:
        marker = self.path / ".complete"
        with self._locked():
            if not marker.exists():
                log(f"building virtual environment for Airflow {self.version} at {self.path}")
                shutil.rmtree(self.path, ignore_errors=True)
                run_uv("venv", "-q", "--python", sys.executable, str(self.path))
                run_uv("pip", "install", "-q", "--compile-bytecode", "--python", self.python, *ENV_SPECS[self.version])
                marker.write_text("ok")
        return self

    def install_project(self) -> None:
        """Install this working tree (not editable: the server sees exactly what a user gets), unless
        the venv already holds exactly these files: reinstalling under a server that another test
        process runs from this venv would pull its modules away mid-import."""
        marker = self.path / ".project"
        with self._locked():
            digest = project_digest()
            if marker.exists() and marker.read_text() == digest:
                return
            marker.unlink(missing_ok=True)  # an install cut off halfway is not taken for a finished one
            run_uv("pip", "install", "-q", "--compile-bytecode", "--python", self.python, "--no-deps",
                   "--reinstall-package", "starship-dags", str(ROOT))
            marker.write_text(digest)


def run_uv(*args: str) -> None:
    run([uv(), *args], env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"})  # the machine's Python, never a download


def project_digest() -> str:
    """What a venv's installed copy of this tree is compared by: the package's files and its metadata."""
    digest = hashlib.sha256()
    package = [path for path in (ROOT / "starship_dags").rglob("*") if path.is_file() and "__pycache__" not in path.parts]
    for path in sorted([ROOT / "pyproject.toml", *package]):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


# --------------------------------------------------------------------------- PostgreSQL


def pg_connect(dbname: str = "postgres"):
    import psycopg

    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=dbname, autocommit=True)


def pg_reachable() -> bool:
    if PG_HOST.startswith("/"):  # a Unix socket directory (the demo's embedded PostgreSQL)
        return Path(PG_HOST, f".s.PGSQL.{PG_PORT}").exists()
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=2):
            return True
    except OSError:
        return False


def db_exists(name: str) -> bool:
    with pg_connect() as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def drop_db(name: str) -> None:
    with pg_connect() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def create_db(name: str, template: str | None = None) -> None:
    drop_db(name)
    with pg_connect() as conn:
        if template:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        else:
            conn.execute(f'CREATE DATABASE "{name}"')


def sql_url(db: str) -> str:
    if PG_HOST.startswith("/"):
        return f"postgresql+psycopg2://{PG_USER}@/{db}?host={PG_HOST}&port={PG_PORT}"
    return f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/{db}"


# --------------------------------------------------------------------------- servers


def fernet_key(seed: str) -> str:
    """A Fernet key derived from the database name: stable for one server, different between servers."""
    import base64

    return base64.urlsafe_b64encode(hashlib.sha256(seed.encode()).digest()).decode()


class AirflowServer:
    """One Airflow web/api server (and optionally a scheduler) with its own home and database."""

    def __init__(self, name: str, env: AirflowEnv, *, extra_env: dict[str, str] | None = None,
                 dags: list[Path] = (), astro_logs: bool = False) -> None:
        self.name = name
        # Serve Starship's /task_log like an Astronomer environment: the web server runs with
        # ASTRONOMER_ENVIRONMENT=local in its own mount namespace, where this server's log folder
        # is mounted at the fixed path the plugin uses (see ../shared/STARSHIP_API.md).
        self.astro_logs = astro_logs
        self.env = env
        self.port = free_port()
        self.home = Path(tempfile.mkdtemp(prefix=f"sd-{name}-"))
        self.db = f"sd_{name}_{os.getpid()}".lower().replace("-", "_").replace(".", "")
        self.dags_folder = self.home / "dags"
        self.dags_folder.mkdir(parents=True, exist_ok=True)
        for dag_file in dags:
            shutil.copy(dag_file, self.dags_folder / Path(dag_file).name)
        self.extra_env = extra_env or {}
        self.procs: list[subprocess.Popen] = []
        self._fernet = fernet_key(self.db)

    @property
    def major(self) -> int:
        return self.env.major

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environ(self, **extra: str) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW", "VIRTUAL_ENV", "PYTHONPATH", "UV_"))
        }
        env.update({
            "AIRFLOW_HOME": str(self.home),
            "PATH": f"{self.env.path / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql_url(self.db),
            "AIRFLOW__DATABASE__LOAD_DEFAULT_CONNECTIONS": "False",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__FERNET_KEY": self._fernet,
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
            "PYTHONWARNINGS": "ignore",
        })
        if self.major == 2:
            env.update({
                "AIRFLOW__WEBSERVER__SECRET_KEY": "sd-" + self.name,
                "AIRFLOW__WEBSERVER__WORKERS": "2",
                "AIRFLOW__WEBSERVER__WEB_SERVER_PORT": str(self.port),
                "AIRFLOW__WEBSERVER__BASE_URL": self.url,
            })
        else:
            passwords = self.home / "simple_auth_passwords.json"
            passwords.write_text(json.dumps({ADMIN_USER: ADMIN_PASSWORD, VIEWER_USER: VIEWER_PASSWORD}))
            env.update({
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin,{VIEWER_USER}:viewer",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
                "AIRFLOW__API_AUTH__JWT_SECRET": "sd-jwt-secret-" + self.name,
                "AIRFLOW__API__SECRET_KEY": "sd-" + self.name,
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            })
        env.update(self.extra_env)
        env.update(extra)
        return env

    # -- database

    def _template_name(self) -> str:
        return f"sd_tpl_af{self.env.version.replace('.', '').replace('-', '_')}_{self.env.spec_hash()}"

    def _ensure_template(self) -> str:
        name = self._template_name()
        with pg_connect() as lock:  # another test process migrating the same template waits here
            lock.execute("SELECT pg_advisory_lock(%s)", (int(hashlib.sha256(name.encode()).hexdigest()[:15], 16),))
            if not db_exists(name):
                self._migrate_template(name)
        return name

    def _migrate_template(self, name: str) -> None:
        log(f"migrating template database {name}")
        building = name + "_building"
        create_db(building)
        saved_db, self.db = self.db, building
        try:
            self.cli("db", "migrate", timeout=900)
            if self.major == 2:
                self.cli("users", "create", "-u", ADMIN_USER, "-p", ADMIN_PASSWORD, "-r", "Admin",
                         "-e", "admin@example.com", "-f", "Ad", "-l", "Min")
        finally:
            self.db = saved_db
        with pg_connect() as conn:
            conn.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')

    def create_database(self) -> None:
        create_db(self.db, template=self._ensure_template())

    # -- processes

    def cli(self, *args: str, env: dict[str, str] | None = None, timeout: float = 900,
            check: bool = True) -> subprocess.CompletedProcess:
        return run([self.env.airflow, *args], env=env or self.environ(), timeout=timeout, check=check)

    def python(self, code: str, *, stdin: str | None = None, timeout: float = 300,
               env: dict[str, str] | None = None) -> str:
        return run([self.env.python, "-c", code], env=env or self.environ(), timeout=timeout,
                   input=stdin).stdout

    def _spawn(self, args: list[str], logname: str, wrap: list[str] | None = None,
               env: dict[str, str] | None = None) -> subprocess.Popen:
        out = open(self.home / logname, "ab")  # noqa: SIM115 - lives as long as the process
        proc = subprocess.Popen(
            [*(wrap or []), self.env.airflow, *args], env=env or self.environ(), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def _spawn_web(self) -> subprocess.Popen:
        if self.major == 2:
            wrap, env = None, None
            if self.astro_logs:
                logs = self.home / "logs"
                logs.mkdir(exist_ok=True)
                ASTRO_LOG_MOUNT.mkdir(parents=True, exist_ok=True)
                wrap = ["unshare", "--mount", "--propagation", "private", "bash", "-c",
                        f'mount --bind "{logs}" "{ASTRO_LOG_MOUNT}" && exec "$@"', "astro-logs"]
                env = self.environ(ASTRONOMER_ENVIRONMENT="local")
            self._web = self._spawn(["webserver", "--port", str(self.port), "--hostname", "127.0.0.1",
                                     "--access-logfile", str(self.home / "access.log")], "webserver.log",
                                    wrap=wrap, env=env)
        else:
            self._web = self._spawn(["api-server", "--port", str(self.port), "--host", "127.0.0.1",
                                     "--workers", "1"], "api-server.log")
        return self._web

    def stop_web(self) -> None:
        """Stop the web/api server only (database and scheduler stay)."""
        self.stop_processes([self._web])

    def start_web(self, timeout: float = 240) -> None:
        self._spawn_web()
        self.wait_ready(timeout)

    def start(self, *, timeout: float = 240, scheduler: bool = False) -> AirflowServer:
        self.create_database()
        self._spawn_web()
        if scheduler:
            self.start_scheduler()
        self.wait_ready(timeout)
        log(f"{self.name}: Airflow {self.env.version} up at {self.url}")
        return self

    def start_scheduler(self) -> list[subprocess.Popen]:
        procs = [self._spawn(["scheduler"], "scheduler.log")]
        if self.major == 3:
            procs.append(self._spawn(["dag-processor"], "dag-processor.log"))
        return procs

    def stop_processes(self, procs: list[subprocess.Popen]) -> None:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            self.procs.remove(proc)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{self.name}: a server process exited early\n{self.server_log()[-5000:]}")
            try:
                answer = requests.get(f"{self.url}/api/starship/health", timeout=5, allow_redirects=False)
                if answer.status_code in (200, 302, 401):
                    return
            except requests.RequestException:
                pass
            time.sleep(1)
        raise RuntimeError(f"{self.name}: not ready after {timeout} s\n{self.server_log()[-5000:]}")

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float) -> tuple[str, float]:
        """Wait until a DAG run ends: its state, and the seconds from its start to its end (database times)."""
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            rows = self.sql("SELECT state, EXTRACT(EPOCH FROM end_date - start_date) FROM dag_run "
                            "WHERE dag_id = %s AND run_id = %s", (dag_id, run_id))
            state = rows[0][0] if rows else None
            if state in ("success", "failed"):
                return state, float(rows[0][1] or 0)
            time.sleep(1)
        raise RuntimeError(f"{self.name}: {dag_id} {run_id} still {state} after {timeout:.0f} s")

    def server_log(self) -> str:
        name = "webserver.log" if self.major == 2 else "api-server.log"
        path = self.home / name
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, *, drop: bool = True) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.procs.clear()
        if drop:
            with contextlib.suppress(Exception):
                drop_db(self.db)
            if not os.environ.get("STARSHIP_DAGS_KEEP_HOMES"):  # set it to read server logs after a failure
                shutil.rmtree(self.home, ignore_errors=True)

    # -- direct database access, for assertions and resets only

    def ensure_viewer(self) -> None:
        """The viewer user (Airflow 3 has it from the environment; Airflow 2 needs a database row)."""
        if self.major == 2 and not self.sql("SELECT 1 FROM ab_user WHERE username = %s", (VIEWER_USER,)):
            self.cli("users", "create", "-u", VIEWER_USER, "-p", VIEWER_PASSWORD, "-r", "Viewer",
                     "-e", "viewer@example.com", "-f", "Vi", "-l", "Ewer")

    def sql(self, query: str, params: tuple | dict | None = None) -> list[tuple]:
        with pg_connect(self.db) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def requests_seen(self) -> int:
        """Requests an Airflow 2 webserver has answered so far (its access log has a line each)."""
        path = self.home / "access.log"
        if not path.exists():
            return 0
        with path.open("rb") as lines:
            return sum(1 for _ in lines)

    def login_count(self) -> int:
        """Successful and failed POSTs to /login/ seen by an Airflow 2 webserver."""
        path = self.home / "access.log"
        if not path.exists():
            return 0
        return len(re.findall(r'"POST /login/', path.read_text(errors="replace")))

    def connection_env(self, conn_id: str, *, login: str | None = ADMIN_USER, password: str | None = ADMIN_PASSWORD,
                       extra: dict[str, Any] | None = None, host: str | None = None) -> dict[str, str]:
        """``AIRFLOW_CONN_*`` for this server; ``host`` reaches it another way (a proxy)."""
        conn = {"conn_type": "starship", "host": host or self.url, "login": login, "password": password}
        conn = {k: v for k, v in conn.items() if v is not None}
        if extra:
            conn["extra"] = extra
        return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn)}

    def client(self) -> StarshipClient:
        """One logged-in client per server for the whole test session (logins are rate limited)."""
        if getattr(self, "_client", None) is None:
            self._client = StarshipClient(self.url, self.major)
        return self._client


# --------------------------------------------------------------------------- an independent client


class StarshipClient:
    """A minimal Starship client, independent of the package under test, for assertions."""

    def __init__(self, url: str, major: int, user: str = ADMIN_USER, password: str = ADMIN_PASSWORD) -> None:
        self.url = url.rstrip("/")
        self.session = requests.Session()
        if major == 2:
            for _attempt in range(8):  # the webserver rate-limits logins: back off on 429
                page = self.session.get(f"{self.url}/login/", timeout=30)
                token = re.search(r'name="csrf_token"[^>]*value="([^"]*)"', page.text).group(1)
                done = self.session.post(f"{self.url}/login/", timeout=30, allow_redirects=False,
                                         data={"username": user, "password": password, "csrf_token": token})
                if done.status_code != 429:
                    break
                time.sleep(float(done.headers.get("Retry-After") or 10))
            assert done.status_code == 302 and "/login" not in done.headers.get("Location", ""), done.status_code
        else:
            answer = self.session.post(f"{self.url}/auth/token", json={"username": user, "password": password},
                                       timeout=30)
            answer.raise_for_status()
            self.session.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"

    def all_rows(self, route: str, dag_id: str, key: str) -> list[dict]:
        """Every row of a DAG in one page (the test client may ask for everything at once)."""
        return self.get(route, dag_id=dag_id, limit=1_000_000, offset=0)[key]

    def get(self, route: str, **params: Any) -> Any:
        answer = self.session.get(f"{self.url}/api/starship/{route}", params=params, timeout=60,
                                  allow_redirects=False)
        answer.raise_for_status()
        return answer.json()

    def by_key(self, route: str, key: str) -> dict[str, dict]:
        return {item[key]: item for item in self.get(route)}


# --------------------------------------------------------------------------- seeding through Airflow itself

SEED_SCRIPT = r"""
import json, sys
from airflow.models import Connection, Pool, Variable
from airflow.utils.session import create_session

spec = json.load(sys.stdin)
with create_session() as session:
    for key in spec.get("delete_variables", []):
        session.query(Variable).filter(Variable.key == key).delete()
    for conn_id in spec.get("delete_connections", []):
        session.query(Connection).filter(Connection.conn_id == conn_id).delete()
    session.flush()
    for v in spec.get("variables", []):
        session.query(Variable).filter(Variable.key == v["key"]).delete()
        session.flush()
        session.add(Variable(key=v["key"], val=v["val"], description=v.get("description")))
    for p in spec.get("pools", []):
        pool = session.query(Pool).filter(Pool.pool == p["name"]).one_or_none()
        if pool is None:
            pool = Pool(pool=p["name"])
            session.add(pool)
        pool.slots = p["slots"]
        pool.description = p.get("description")
        pool.include_deferred = p.get("include_deferred", False)
    for c in spec.get("connections", []):
        session.query(Connection).filter(Connection.conn_id == c["conn_id"]).delete()
        session.flush()
        session.add(Connection(**c))
print("seeded")
"""

RESET_SQL = [
    "DELETE FROM variable",
    "DELETE FROM connection",
    "DELETE FROM slot_pool WHERE pool <> 'default_pool'",
    "UPDATE slot_pool SET slots = 128, description = 'Default pool', include_deferred = false "
    "WHERE pool = 'default_pool'",
]


def seed(server: AirflowServer, spec: dict[str, Any]) -> None:
    server.python(SEED_SCRIPT, stdin=json.dumps(spec))


def reset_keyed_resources(server: AirflowServer) -> None:
    for statement in RESET_SQL:
        server.sql(statement)


# --------------------------------------------------------------------------- running the migration DAG


@dataclass
class DagTestResult:
    returncode: int
    output: str
    run_state: str | None
    task_states: dict[str, str]
    summaries: dict[str, Any]  # task label -> the operator's summary (XCom key "summary"); "label/resource" for its parts
    report: Any = None  # the report task's return value
    run_id: str | None = None

    def explain(self) -> str:
        """What went wrong, for assertion messages: failures by name, task states, the output's end."""
        failures = [f"{task}: {f['item']}: {f['reason']}" for task, s in self.summaries.items() for f in s["failures"]]
        first = self.output.find("Traceback (most recent call last)")
        traceback = ["--- first traceback", self.output[first:first + 4000]] if first >= 0 else []
        return "\n".join([f"states: {self.task_states}", *failures, *traceback, "--- output tail", self.output[-3000:]])


def migration_env(target: AirflowServer, source: AirflowServer, source_conn: dict[str, str] | None = None,
                  target_conn: dict[str, str] | None = None) -> dict[str, str]:
    return target.environ(
        **(source_conn or source.connection_env("starship_source")),
        **(target_conn or target.connection_env("starship_target")),
    )


def run_migration_dag(target: AirflowServer, source: AirflowServer, conf: dict[str, Any], *,
                      dag_id: str = "starship_migration", source_conn: dict[str, str] | None = None,
                      target_conn: dict[str, str] | None = None, timeout: float = 900) -> DagTestResult:
    """``airflow dags test`` of the migration DAG inside the target, with both connections as env vars.

    Validation (a second read of both sides) is off unless ``conf`` turns it on: it has its own
    tests, and every extra task costs seconds under ``dags test`` on Airflow 3."""
    conf = {"validate": False, **conf}
    env = migration_env(target, source, source_conn, target_conn)
    before = {row[0] for row in target.sql("SELECT run_id FROM dag_run WHERE dag_id = %s", (dag_id,))}
    proc = target.cli("dags", "test", dag_id, "-c", json.dumps(conf), env=env, timeout=timeout, check=False)
    output = proc.stdout + proc.stderr
    runs = [row[0] for row in target.sql("SELECT run_id FROM dag_run WHERE dag_id = %s", (dag_id,))]
    new = [r for r in runs if r not in before]
    if not new:
        return DagTestResult(proc.returncode, output, None, {}, {})
    return collect_run(target, dag_id, new[0], proc.returncode, output)


def collect_run(target: AirflowServer, dag_id: str, run_id: str, returncode: int = 0, output: str = "") -> DagTestResult:
    """A finished (or stopped) run of the migration DAG, read from the target's database."""
    state = target.sql("SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s", (dag_id, run_id))[0][0]
    tasks = dict(target.sql(
        "SELECT task_id || CASE WHEN map_index >= 0 THEN '[' || map_index || ']' ELSE '' END, state "
        "FROM task_instance WHERE dag_id = %s AND run_id = %s", (dag_id, run_id)))
    summaries, report = {}, None
    for task_id, map_index, key, value in target.sql(
        "SELECT task_id, map_index, key, value FROM xcom WHERE dag_id = %s AND run_id = %s "
        "AND key IN ('summary', 'return_value', 'report')",
        (dag_id, run_id),
    ):
        value = xcom_json(value)
        if task_id == "report":
            report = value
        elif key == "summary":  # one entry per resource: a task's parts get their own labels
            label = task_id if map_index < 0 else f"{task_id}[{map_index}]"
            # a history task pushes one summary per DAG of its batch: "task[index]/dag_id"
            for pushed in value if isinstance(value, list) else [value]:
                own = f"{label}/{pushed['dag_id']}" if isinstance(value, list) else label
                for number, summary in enumerate(expand(pushed)):
                    summaries[own if number == 0 else f"{own}/{summary['resource']}"] = summary
    return DagTestResult(returncode, output, state, tasks, summaries, report, run_id)


def xcom_json(value: Any) -> Any:
    """An XCom column's value as the task pushed it (Airflow 2 stores JSON bytes, Airflow 3 a JSON column)."""
    return json.loads(bytes(value)) if isinstance(value, (bytes, memoryview)) else value


def xcom_value(server: AirflowServer, dag_id: str, run_id: str, task_id: str, key: str = "return_value",
               map_index: int = -1) -> Any:
    """One XCom's value as the task pushed it."""
    rows = server.sql("SELECT value FROM xcom WHERE dag_id = %s AND run_id = %s AND task_id = %s AND key = %s "
                      "AND map_index = %s", (dag_id, run_id, task_id, key, map_index))
    assert rows, f"no XCom {key!r} of {dag_id}/{run_id}/{task_id}"
    return xcom_json(rows[0][0])


def start_migration_dag(target: AirflowServer, source: AirflowServer, conf: dict[str, Any],
                        dag_id: str = "starship_migration") -> subprocess.Popen:
    """The same ``dags test`` in the background, in its own process group (to be killed)."""
    env = migration_env(target, source)
    return subprocess.Popen([target.env.airflow, "dags", "test", dag_id, "-c", json.dumps(conf)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def task_log_text(server: AirflowServer) -> str:
    """Every task log file the server wrote, concatenated."""
    root = server.home / "logs"
    if not root.exists():
        return ""
    return "\n".join(p.read_text(errors="replace") for p in sorted(root.rglob("*")) if p.is_file())
