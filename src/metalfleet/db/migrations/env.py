"""Alembic environment: uses the connection handed over by metalfleet.db.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from metalfleet.db import (  # noqa: F401  (every table)
    agent_models,
    audit_models,
    health_models,
    models,
    node_credential_models,
    web_session_models,
)
from metalfleet.db.base import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
        with engine.begin() as conn:
            context.configure(connection=conn, target_metadata=target_metadata,
                              render_as_batch=True)
            context.run_migrations()
        return
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=True)
    context.run_migrations()


run()
