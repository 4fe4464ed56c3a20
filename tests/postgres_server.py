"""A real, throwaway PostgreSQL 15 cluster (Debian's ``postgresql``) for tests, on 127.0.0.1 and a free port.

    with PostgresServer() as server:
        server.url        # postgresql://switchboard@127.0.0.1:PORT/switchboard
        server.create_database("other")

``initdb`` refuses to run as root, so the cluster directory belongs to ``postgres`` and the server runs as that
user (via ``runuser``) when the tests run as root. Trust authentication on loopback only; stopped (``-m fast``)
and removed in ``close()``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from tests.processes import free_port

BIN_DIR = Path("/usr/lib/postgresql/15/bin")
USER = "switchboard"


class PostgresServer:
    def __init__(self, port: int | None = None) -> None:
        if not (BIN_DIR / "initdb").exists():
            raise RuntimeError("PostgreSQL 15 is not installed (Debian package postgresql)")
        self.port = port or free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="switchboard-pg-"))
        self._data = self._dir / "data"
        self._started = False
        if os.geteuid() == 0:
            shutil.chown(self._dir, "postgres", "postgres")

    def _as_owner(self, *command: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)

    def _run(self, *command: str) -> None:
        subprocess.run(self._as_owner(*command), check=True, capture_output=True, timeout=120)

    def url_for(self, database: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    @property
    def url(self) -> str:
        return self.url_for(USER)

    def start(self) -> None:
        if self._started:
            return
        if not self._data.exists():
            self._run(str(BIN_DIR / "initdb"), "-D", str(self._data), "-A", "trust", "-U", USER, "--no-sync")
        options = f"-h 127.0.0.1 -p {self.port} -k {self._dir}"
        self._run(
            str(BIN_DIR / "pg_ctl"), "-D", str(self._data), "-o", options, "-l", str(self._dir / "log"), "-w", "start"
        )
        self._started = True
        if not self._database_exists(USER):
            self.create_database(USER)

    def _psql(self, sql: str, database: str = "postgres") -> str:
        result = subprocess.run(
            [str(BIN_DIR / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, "-d", database, "-tAc", sql],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return result.stdout.strip()

    def _database_exists(self, name: str) -> bool:
        return self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'") == "1"

    def create_database(self, name: str) -> str:
        """A new empty database (a fresh system of record per test); its URL."""
        self._psql(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def query(self, sql: str, database: str = USER) -> str:
        return self._psql(sql, database)

    def stop(self) -> None:
        if self._started:
            self._started = False
            self._run(str(BIN_DIR / "pg_ctl"), "-D", str(self._data), "-m", "fast", "-w", "stop")

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
