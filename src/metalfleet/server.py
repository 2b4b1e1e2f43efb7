"""Assemble and run metalfleet: database, credentials, admin token, API, conductor, lab."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Callable, Coroutine, Generator
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy import select

from metalfleet.api.app import create_app
from metalfleet.boot import nocloud_seeds
from metalfleet.conductor.worker import Conductor
from metalfleet.config import Settings
from metalfleet.core.errors import ValidationError
from metalfleet.db import migrate
from metalfleet.db import models as m
from metalfleet.db.session import Database
from metalfleet.health import rules as health_rules
from metalfleet.inventory import schemas as s
from metalfleet.inventory import tokens
from metalfleet.private_files import PRIVATE_FILE, restrict, secure_data_dir, write_private
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


def ensure_admin_token(db: Database, data_dir: Path) -> str:
    """On first start, create an admin token and keep it in <data-dir>/admin.token (0600)."""
    path = data_dir / ADMIN_TOKEN_FILE
    if path.exists():
        restrict(path, PRIVATE_FILE)
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
    """Open the database (migrated), the credential key and the admin token of a data dir.

    The data dir becomes 0700 and its secrets 0600 before anything is written there
    (metalfleet.private_files); the SQLite file is created 0600 by db/session.py.
    """
    check_tls(settings)
    secure_data_dir(settings.data_dir)
    db = Database(settings.resolved_database_url())
    migrate.upgrade(db.engine)
    cipher = load_cipher(settings.data_dir)
    ensure_admin_token(db, settings.data_dir)
    # deploys' NoCloud seed paths, for the node's boot path (boot/nocloud_seeds.py)
    nocloud_seeds.register_delivery("files", nocloud_seeds.SeedFiles(
        settings.data_dir / nocloud_seeds.SEED_FOLDER))
    return AppContext(db=db, cipher=cipher, settings=settings)


def check_tls(settings: Settings) -> None:
    """Refuse half a TLS set-up at start-up rather than serve plain HTTP by mistake."""
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise ValidationError("--tls-cert and --tls-key go together: give both or neither")
    for path in (settings.tls_cert, settings.tls_key):
        if path is not None and not path.is_file():
            raise ValidationError(f"TLS file {path} does not exist or is not a file")


def tls_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for serving HTTPS itself; none when a proxy (or nobody) does TLS."""
    if settings.tls_cert is None:
        return {}
    return {"ssl_certfile": str(settings.tls_cert), "ssl_keyfile": str(settings.tls_key)}


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
            lifespan="off", **tls_options(settings),
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
