"""Shared fixtures: a fresh database on SQLite and on PostgreSQL, an app, a client, a conductor.

Every test that takes ``db_url`` (directly or through ``context``/``client``) runs twice: on
SQLite and on a real PostgreSQL server (METALFLEET_TEST_PG_URL, default the local one). A
missing PostgreSQL server fails those tests loudly; it never skips them.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from metalfleet.api.app import create_app
from metalfleet.conductor.worker import Conductor
from metalfleet.config import Settings
from metalfleet.runtime import AppContext, LabAllowance
from metalfleet.server import bootstrap

PG_ADMIN_URL = os.environ.get(
    "METALFLEET_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _pg_database() -> Iterator[str]:
    name = f"mf_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # fail loudly: CI must have PostgreSQL
        pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is not usable ({exc}); start it or set "
                    "METALFLEET_TEST_PG_URL")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'metalfleet.db'}"
    else:
        yield from _pg_database()


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=db_url, poll_interval_s=0.05)


@pytest.fixture
def context(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppContext]:
    monkeypatch.delenv("METALFLEET_SECRET_KEY", raising=False)
    ctx = bootstrap(settings)
    yield ctx
    ctx.db.dispose()


@pytest.fixture
def admin_token(context: AppContext) -> str:
    return (context.settings.data_dir / "admin.token").read_text().strip()


@pytest.fixture
def lab_enabled(context: AppContext) -> LabAllowance:
    """This test's process is a lab process (`up --lab`): the lab's shortcuts, hardware type
    and routes are registered. A test (or fixture) that needs the lab's routes takes this."""
    from metalfleet.lab import plugin

    return plugin.enable(context)


@pytest.fixture
def client(request: pytest.FixtureRequest, context: AppContext,
           admin_token: str) -> Iterator[TestClient]:
    if "lab_enabled" in request.fixturenames:  # its routes must exist before the app is built
        request.getfixturevalue("lab_enabled")
    with TestClient(create_app(context)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {admin_token}"
        yield test_client


@pytest.fixture
def conductor(context: AppContext) -> Conductor:
    return Conductor(context.db, context.cipher, name="test-conductor", workers=4,
                     poll_interval_s=0.02, heartbeat_interval_s=0.5)


def drive(conductor: Conductor, until: Callable[[], bool], timeout: float = 30.0) -> None:
    """Run the conductor's loop until ``until()`` holds (checked between ticks)."""

    async def loop() -> None:
        deadline = time.monotonic() + timeout
        while True:
            await conductor.tick()
            await asyncio.sleep(0.02)
            if not conductor._running and await asyncio.to_thread(until):
                return
            if time.monotonic() > deadline:
                await conductor.drain()
                raise AssertionError(f"condition not reached within {timeout} s")

    asyncio.run(loop())


def fake_node(name: str, mac: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "bmc": {"driver": "fake", "address": f"fake://{name}", "username": "admin",
                "password": "s3cret-pw"},
        "ports": [{"name": "eth0", "mac": mac, "pxe": True}],
    }
    body.update(extra)
    return body


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live_server(request: pytest.FixtureRequest, context: AppContext) -> Iterator[str]:
    """The API on a real socket (127.0.0.1, free port), for peers that fetch over HTTP
    (HTTPS when the test set ``context.settings.tls_cert``/``tls_key`` first)."""
    import threading

    if "lab_enabled" in request.fixturenames:
        request.getfixturevalue("lab_enabled")

    import uvicorn

    from metalfleet.server import EmbeddedServer, tls_options

    port = free_port()
    context.settings.port = port
    server = EmbeddedServer(uvicorn.Config(create_app(context), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off",
                                           **tls_options(context.settings)))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "API server did not start"
        time.sleep(0.02)
    yield f"{'https' if context.settings.serves_tls else 'http'}://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
