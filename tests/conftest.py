"""Test fixtures: the same tests run on SQLite and on PostgreSQL, against a live HTTP server.

PostgreSQL: $STOCKHUB_TEST_POSTGRES (default postgresql://postgres@127.0.0.1:5432/test). When it
does not answer, the local cluster is started; if there is still none, the PostgreSQL tests
fail (they are never skipped).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx
import psycopg
import pytest
from hypothesis import settings as hypothesis_settings
from sqlalchemy import text

from stockhub.api.server import http_server
from stockhub.db.engine import make_engine
from stockhub.db.migrate import upgrade
from stockhub.db.tables import metadata
from stockhub.jobs.worker import Worker
from stockhub.services.context import Hub
from stockhub.settings import Settings
from support import Tenant, make_tenant

# Examples are bounded by count, not by time: a loaded 2-core CI machine must not fail a test.
hypothesis_settings.register_profile("stockhub", deadline=None)
hypothesis_settings.load_profile("stockhub")

# The suite runs without HTTP rate limits (schemathesis and the concurrency tests send thousands of
# requests with one token); tests/api/test_rate_limits.py sets its own.
os.environ.setdefault("STOCKHUB_RATE_LIMIT_PER_TOKEN", "off")
os.environ.setdefault("STOCKHUB_RATE_LIMIT_PER_ADDRESS", "off")

PG_ADMIN_URL = os.environ.get("STOCKHUB_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_answers() -> bool:
    try:
        psycopg.connect(PG_ADMIN_URL, connect_timeout=3).close()
        return True
    except psycopg.OperationalError:
        return False


def _start_local_postgres() -> None:
    versions = sorted(Path("/etc/postgresql").glob("*")) if Path("/etc/postgresql").exists() else []
    if versions and shutil.which("pg_ctlcluster"):
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1].name, "main", "start"], check=False)
        for _ in range(30):
            if _pg_answers():
                return
            time.sleep(0.5)


@pytest.fixture(scope="session")
def postgres_database():
    """A fresh database for this test session, migrated once; dropped at the end."""
    if not _pg_answers():
        _start_local_postgres()
    if not _pg_answers():
        pytest.fail(f"PostgreSQL does not answer at {PG_ADMIN_URL} and could not be started")
    name = f"stockhub_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class PgStore:
    hub: Hub
    organization: int
    store_id: str
    store: int


@pytest.fixture
def pg_store(postgres_database, tmp_path):
    """A hub on the session's PostgreSQL database and a new store in it (tests of concurrency)."""
    from stockhub import ids
    from stockhub.services import tenancy

    hub = Hub(Settings(data_dir=tmp_path, database_url=postgres_database, secret_key="test-secret"), make_engine(postgres_database))
    org = tenancy.create_organization(hub, "Concurrency").id
    brand = tenancy.create_brand_for(hub, org, "Concurrency").id
    store = tenancy.create_store_for(hub, brand, {"name": "Concurrency", "country": "GB"}).id
    yield PgStore(hub, ids.decode("organization", org), store, ids.decode("store", store))
    hub.engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    return fresh_database(request, request.param, tmp_path)


def fresh_database(request, kind: str, tmp_path: Path) -> str:
    """An empty, migrated database of `kind` (sqlite or postgresql) for one test or module."""
    if kind == "sqlite":
        path = tmp_path / "stockhub.sqlite3"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_database")
    engine = make_engine(url)
    with engine.begin() as conn:
        tables = ", ".join(t.name for t in metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


@pytest.fixture
def settings(database_url, tmp_path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data", database_url=database_url, secret_key="test-secret", worker_poll_seconds=0.2
    )


@pytest.fixture
def hub(settings):
    hub = Hub.from_settings(settings)
    yield hub
    hub.engine.dispose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveServer:
    url: str
    hub: Hub
    worker: Worker


@pytest.fixture
def server(hub):
    """stockhub's API and a worker, serving over real HTTP on a loopback port."""
    with serving(hub) as live:
        yield live


@contextmanager
def serving(hub):
    port = _free_port()
    uv = http_server(hub, "127.0.0.1", port, log_level="warning", lifespan="off")
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    worker = Worker(hub)
    worker_thread = worker.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    yield LiveServer(f"http://127.0.0.1:{port}", hub, worker)
    worker.stop()
    uv.should_exit = True
    thread.join(5)
    worker_thread.join(5)


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture
def tenant(hub) -> Tenant:
    return make_tenant(hub)


@pytest.fixture
def run(settings):
    """Run the `stockhub` command against the test's database and data folder."""
    stockhub = str(Path(sys.executable).parent / "stockhub")
    env = os.environ | {
        "STOCKHUB_DATABASE_URL": settings.database_url,
        "STOCKHUB_DATA_DIR": str(settings.data_dir),
        "STOCKHUB_SECRET_KEY": settings.secret_key,
    }

    def run(*args: str, ok: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
        done = subprocess.run([stockhub, *args], env=env, capture_output=True, text=True, timeout=120, input=stdin)
        if ok:
            assert done.returncode == 0, done.stderr
        return done

    return run


@pytest.fixture
def receiver():
    """A webhook receiver on loopback that verifies what it gets with standardwebhooks."""
    from receiver import Receiver

    receiver = Receiver()
    yield receiver
    receiver.stop()


@dataclass
class S3Server:
    """A real S3-compatible server (moto in server mode, over HTTP on loopback)."""

    endpoint_url: str
    env: dict[str, str]  # the AWS settings a stockhub process needs to reach it (plus STOCKHUB_S3_ENDPOINT_URL)

    def new_bucket(self) -> str:
        from stockhub.storage import S3Storage

        name = f"stockhub-{uuid.uuid4().hex[:12]}"
        S3Storage(name, endpoint_url=self.endpoint_url).client.create_bucket(Bucket=name)
        return name


@pytest.fixture(scope="session")
def s3_server():
    """One moto S3 server for the session; its credentials are the usual AWS_* variables (set
    here for this process, and in `env` for the processes a test starts)."""
    from moto.server import ThreadedMotoServer

    env = {
        "AWS_ACCESS_KEY_ID": "stockhub-test",
        "AWS_SECRET_ACCESS_KEY": "stockhub-test-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    saved = {name: os.environ.get(name) for name in [*env, "AWS_SESSION_TOKEN", "AWS_PROFILE"]}
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        os.environ.pop(name, None)
    os.environ.update(env)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    yield S3Server(endpoint, env | {"STOCKHUB_S3_ENDPOINT_URL": endpoint})
    moto.stop()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def s3_storage_url(s3_server) -> str:
    """`STOCKHUB_STORAGE_URL` of a new, empty bucket (with a prefix) on the session's S3 server."""
    return f"s3://{s3_server.new_bucket()}/stockhub"


@pytest.fixture
def empty_postgres_url():
    """A new, empty PostgreSQL database (not migrated), dropped after the test."""
    if not _pg_answers():
        _start_local_postgres()
    name = f"stockhub_empty_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
