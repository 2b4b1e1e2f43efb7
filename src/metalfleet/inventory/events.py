"""The event log: every transition, action and error, per node and fleet-wide."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from metalfleet.db import models as m
from metalfleet.inventory.pagination import check_limit


def record(
    session: Session,
    *,
    node: m.Node | None,
    kind: str,
    actor: str,
    message: str,
    from_state: str | None = None,
    to_state: str | None = None,
    data: dict[str, Any] | None = None,
) -> m.Event:
    event = m.Event(
        node_id=node.id if node is not None else None,
        node_name=node.name if node is not None else None,
        kind=kind,
        actor=actor,
        message=message,
        from_state=from_state,
        to_state=to_state,
        data=data or {},
    )
    session.add(event)
    return event


def list_events(
    session: Session,
    *,
    node_name: str | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    text: str | None = None,
    after_id: int | None = None,
    limit: int = 100,
) -> tuple[list[m.Event], str | None]:
    """Events oldest first; ``next`` is the id to pass as ``after`` for the next page."""
    check_limit(limit)
    statement = select(m.Event)
    if node_name is not None:
        statement = statement.where(m.Event.node_name == node_name)
    if kind is not None:
        statement = statement.where(m.Event.kind == kind)
    if since is not None:
        statement = statement.where(m.Event.time >= since)
    if text:
        statement = statement.where(m.Event.message.ilike(f"%{text}%"))
    if after_id is not None:
        statement = statement.where(m.Event.id > after_id)
    rows = list(session.scalars(statement.order_by(m.Event.id).limit(limit + 1)))
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, str(rows[-1].id)
    return rows, None
