"""Fixtures of the records tests: a real PostgreSQL cluster (Debian's ``postgresql``: initdb and
pg_ctl in a temporary directory, on a free 127.0.0.1 port, as the ``postgres`` user when the
suite runs as root, which PostgreSQL refuses), and the database under test, SQLite or PostgreSQL.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hotline.loopback import free_port


def _pg_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    for exe in [*candidates, *([found] if found else [])]:
        path = Path(exe).parent
        if (path / "initdb").exists() and (path / "postgres").exists():
            return path
    return None


class PostgresCluster:
    """One PostgreSQL cluster of this test run; ``url(db)`` names a database in it."""

    def __init__(self) -> None:
        bin_dir = _pg_bin()
        if bin_dir is None:
            pytest.skip("PostgreSQL is not installed (make testdeps installs postgresql)")
        self.bin = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="hotline-pg-"))
        self.port = free_port()
        self.user: str | None = None
        if os.geteuid() == 0:  # postgres refuses to run as root
            self.user = "postgres"
            entry = pwd.getpwnam(self.user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.dir / "data"), "-A", "trust", "-U", "hotline",
                  "--no-sync", "-E", "UTF8")  # fmt: skip
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bin / tool), *args]
        kwargs: dict[str, Any] = {"user": self.user} if self.user else {}
        result = subprocess.run(
            cmd, capture_output=True, text=True, timeout=60, check=False, **kwargs
        )
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed: {result.stdout}{result.stderr}")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-o", options,
                  "-l", str(self.dir / "log"), "-w", "-t", "30", "start")  # fmt: skip

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://hotline@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        name = "t_" + uuid.uuid4().hex[:12]
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "hotline", name)
        return self.url(name)

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def own_postgres() -> Iterator[PostgresCluster]:
    """A cluster of this test alone (it stops and starts it)."""
    cluster = PostgresCluster()
    try:
        yield cluster
    finally:
        cluster.destroy()


def _database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/records.sqlite3"
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return cluster.create_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file, or a new database on the suite's PostgreSQL."""
    return _database(request, tmp_path)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def call_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same, for tests that place real-time calls: on PostgreSQL they are in the slow tier
    (`make test-all`); `make test` runs them on SQLite."""
    return _database(request, tmp_path)
