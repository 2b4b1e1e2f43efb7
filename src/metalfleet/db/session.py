"""Engines and sessions for SQLite (embedded default) and PostgreSQL (production)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from metalfleet.private_files import secure_sqlite_file


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; None for in-memory and other databases."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    name = parsed.database or ""
    if not name or name == ":memory:" or name.startswith("file:") or "mode=memory" in url:
        return None
    return Path(name)


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        database = sqlite_file(url)
        if database is not None:  # 0600 before the first connect: -wal/-shm inherit the mode
            secure_sqlite_file(database)
        # One process, many threads: WAL lets readers run beside the writer, the busy timeout
        # queues writers instead of failing them.
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    # PostgreSQL: TLS and server verification come with the URL, for example
    # ?sslmode=verify-full&sslrootcert=/etc/metalfleet/pg-ca.pem (docs/operations.md).
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True, **kwargs)


def rowcount(result: Any) -> int:
    """Rows matched by an UPDATE/DELETE (how a conditional UPDATE tells who won)."""
    return int(result.rowcount)


class Database:
    """An engine and its session factory; one per process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on any error."""
        with self.sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
