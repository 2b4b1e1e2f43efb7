"""Assemble and run metalfleet: database, credentials, admin token, API, conductor, lab."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
from collections.abc import Callable, Coroutine, Generator
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy import select

from metalfleet.api.app import create_app
from metalfleet.conductor.worker import Conductor
from metalfleet.config import Settings
from metalfleet.db import migrate
from metalfleet.db import models as m
from metalfleet.db.session import Database
from metalfleet.health import rules as health_rules
from metalfleet.inventory import schemas as s
from metalfleet.inventory import tokens
from metalfleet.runtime import AppContext
from metalfleet.secrets import load_cipher

log = logging.getLogger(__name__)

ADMIN_TOKEN_FILE = "admin.token"


class EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: `serve` below owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def tune_gc() -> None:
    """Keep full garbage collections short in a long-running server.

    The libraries' import-time objects (SQLAlchemy, FastAPI, Pydantic: hundreds of thousands)
    never die, yet every full collection walks them: measured here as 120 ms pauses that
    set the API's p99. Freezing them after start-up leaves only request garbage to scan.
    """
    gc.collect()
    gc.freeze()


def write_private(path: Path, content: str) -> None:
    """Write a file only its owner can read (tokens, keys)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def ensure_admin_token(db: Database, data_dir: Path) -> str:
    """On first start, create an admin token and keep it in <data-dir>/admin.token (0600)."""
    path = data_dir / ADMIN_TOKEN_FILE
    if path.exists():
        secret = path.read_text().strip()
        with db.session() as session:
            try:
                tokens.authenticate(session, secret)
                return secret
            except Exception:
                log.warning("%s holds a token this database does not know; making a new one",
                            path)
    with db.session() as session:
        taken = set(session.scalars(select(m.ApiToken.name)))
        name = "admin" if "admin" not in taken else f"admin-{len(taken) + 1}"
        _, secret = tokens.create_token(session, s.TokenIn(name=name, role=s.Role.ADMIN))
    write_private(path, secret + "\n")
    log.info("created admin token %r in %s", name, path)
    return secret


def bootstrap(settings: Settings) -> AppContext:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url())
    migrate.upgrade(db.engine)
    cipher = load_cipher(settings.data_dir)
    ensure_admin_token(db, settings.data_dir)
    return AppContext(db=db, cipher=cipher, settings=settings)


def make_conductor(context: AppContext) -> Conductor:
    settings = context.settings
    conductor = Conductor(
        context.db, context.cipher, name=settings.conductor_name,
        workers=settings.conductor_workers, poll_interval_s=settings.poll_interval_s,
        dead_after_s=settings.conductor_dead_after_s,
        agent_heartbeat_timeout_s=settings.agent_heartbeat_timeout_s,
        bmc_health_interval_s=settings.bmc_health_interval_s,
        health_tick_s=settings.health_tick_s,
    )
    health_rules.configure_from(settings)  # a conductor-only process has no create_app
    context.wake_conductor = conductor.wake
    return conductor


async def serve(
    settings: Settings,
    *,
    api: bool = True,
    conductor: bool = True,
    extra_tasks: list[Callable[[AppContext], Coroutine[Any, Any, None]]] | None = None,
    context: AppContext | None = None,
) -> None:
    """Run the API and/or a conductor (and any extra tasks, like the lab) until a signal."""
    context = context or bootstrap(settings)
    tune_gc()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    tasks: list[asyncio.Task[None]] = []
    worker = make_conductor(context) if conductor else None
    if worker is not None:
        tasks.append(asyncio.create_task(worker.run()))
    server = None
    if api:
        config = uvicorn.Config(
            create_app(context), host=settings.host, port=settings.port, log_level="warning",
            lifespan="off",
        )
        server = EmbeddedServer(config)
        tasks.append(asyncio.create_task(server.serve()))
    core = list(tasks)  # the API and the conductor: they finish on their own when told to
    for make_task in extra_tasks or []:
        tasks.append(asyncio.create_task(make_task(context)))
    waiter = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for task in done:
        if task is not waiter and task.exception() is not None:
            log.error("a component stopped: %r", task.exception())
    if server is not None:
        server.should_exit = True
    if worker is not None:
        worker.stop()
    # Give the API and running conductor steps a moment to finish, then cancel the rest (extra
    # tasks such as the lab loop run until cancelled). Steps still running are recovered by
    # the next conductor as failed, with the reason.
    if core:
        await asyncio.wait(core, timeout=10)
    for task in tasks:
        if not task.done():
            task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if worker is not None:
        await asyncio.to_thread(worker.unregister)
    context.db.dispose()
