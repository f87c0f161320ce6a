"""A throw-away PostgreSQL database on the machine's server (unix socket, trust auth as postgres).

If the server is not running it is started with ``pg_ctlcluster`` (as CI's setup does).
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["ensure_server", "temp_database"]

SOCKET_DIR = "/var/run/postgresql"


def _psql(sql: str, database: str = "postgres") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["psql", "-h", SOCKET_DIR, "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
        capture_output=True,
        text=True,
        timeout=60,
    )


def ensure_server(timeout: float = 30.0) -> None:
    if subprocess.run(["pg_isready", "-q", "-h", SOCKET_DIR], timeout=10).returncode == 0:
        return
    for version in sorted(os.listdir("/etc/postgresql")) if Path("/etc/postgresql").is_dir() else []:
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], capture_output=True, timeout=60
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if subprocess.run(["pg_isready", "-q", "-h", SOCKET_DIR], timeout=10).returncode == 0:
            return
        time.sleep(0.5)
    raise RuntimeError("PostgreSQL is not running and could not be started")


@contextmanager
def temp_database() -> Iterator[str]:
    """Yield an asyncpg URL of a new, empty database; drop it afterwards."""
    ensure_server()
    name = f"gtx_test_{uuid.uuid4().hex[:12]}"
    result = _psql(f"CREATE DATABASE {name}")
    if result.returncode != 0:
        raise RuntimeError(f"cannot create test database: {result.stderr}")
    try:
        yield f"postgresql://postgres@/{name}?host={SOCKET_DIR}"
    finally:
        _psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
