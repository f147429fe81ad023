"""Share one login between the tasks of a worker.

An open-source Airflow 2 webserver allows about five web logins per 40 seconds per client. A
migration runs several tasks per DAG, so one login per task would spend most of its time waiting
out 429s. After a successful login the hook stores the session cookie (Airflow 2) or the JWT
(Airflow 3) here, and the next task on the same machine starts from it; a refused credential is
replaced by a fresh login as usual. A password the server refused is remembered for a few
minutes too, so that the other tasks fail at once instead of each spending a login attempt.

What is stored cannot be read without the connection's password: each entry is encrypted with a
Fernet key derived from the password, the login and the URL, and the file name is a hash of them.
The folder is private to the user (mode 0700) and entries expire after ``TTL_SECONDS``. A lock
file per entry makes concurrent tasks wait for one login instead of all logging in at once.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

TTL_SECONDS = 3600
#: How long a refused password is remembered: other tasks fail at once instead of trying it
#: again (each failed try counts against the Airflow 2 login limit and lockouts).
REFUSED_TTL_SECONDS = 300
LOCK_TIMEOUT_SECONDS = 120


def cache_dir() -> Path:
    folder = Path(os.environ.get("STARSHIP_DAGS_SESSION_CACHE") or Path(tempfile.gettempdir()) / f"starship_dags-{os.getuid()}")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


class SessionCache:
    def __init__(self, url: str, login: str, password: str) -> None:
        material = json.dumps([url, login, password]).encode()
        self._name = hashlib.sha256(b"name:" + material).hexdigest()[:40]
        self._fernet = Fernet(base64.urlsafe_b64encode(hashlib.sha256(b"key:" + material).digest()))

    @property
    def path(self) -> Path:
        return cache_dir() / f"{self._name}.session"

    def load(self) -> dict[str, Any] | None:
        try:
            token = self.path.read_bytes()
            data = json.loads(self._fernet.decrypt(token, ttl=TTL_SECONDS))
        except (OSError, InvalidToken, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        if data.get("kind") == "refused" and time.time() - self._fernet.extract_timestamp(token) > REFUSED_TTL_SECONDS:
            return None
        return data

    def save(self, entry: dict[str, Any]) -> None:
        token = self._fernet.encrypt(json.dumps(entry).encode())
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(token)
        os.replace(tmp, self.path)

    def forget(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()

    @contextlib.contextmanager
    def login_lock(self) -> Iterator[None]:
        """Hold the entry's lock while logging in; give up waiting after LOCK_TIMEOUT_SECONDS."""
        fd = os.open(cache_dir() / f"{self._name}.lock", os.O_WRONLY | os.O_CREAT, 0o600)
        deadline = time.monotonic() + LOCK_TIMEOUT_SECONDS
        locked = False
        try:
            while not locked:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    locked = True
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        break  # log in anyway rather than hang
                    time.sleep(0.2)
            yield
        finally:
            if locked:
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
