"""The event log: every transition, action and error, per node and fleet-wide."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from metalfleet.db import models as m
from metalfleet.inventory.pagination import check_limit

if TYPE_CHECKING:
    from metalfleet.policy import Scope


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
    until: datetime | None = None,
    text: str | None = None,
    after_id: int | None = None,
    limit: int = 100,
    newest_first: bool = False,
    scope: Scope | None = None,
) -> tuple[list[m.Event], str | None]:
    """Events oldest first (or newest first); ``next`` is the id to pass as ``after``.

    ``kind`` may list several kinds separated by commas (``alert,bmc-log,health``); ``text``
    matches the message case-insensitively. With ``newest_first`` the cursor walks backwards.
    """
    check_limit(limit)
    statement: Select[Any] = select(m.Event)
    if scope is not None:  # the caller's access policy (metalfleet/policy.py)
        statement = scope(statement)
    if node_name is not None:
        statement = statement.where(m.Event.node_name == node_name)
    if kind is not None:
        kinds = [k.strip() for k in kind.split(",") if k.strip()]
        statement = statement.where(m.Event.kind.in_(kinds))
    if since is not None:
        statement = statement.where(m.Event.time >= since)
    if until is not None:
        statement = statement.where(m.Event.time < until)
    if text:
        statement = statement.where(m.Event.message.ilike(f"%{text}%"))
    if after_id is not None:
        before_or_after = m.Event.id < after_id if newest_first else m.Event.id > after_id
        statement = statement.where(before_or_after)
    order = m.Event.id.desc() if newest_first else m.Event.id
    rows = list(session.scalars(statement.order_by(order).limit(limit + 1)))
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, str(rows[-1].id)
    return rows, None
