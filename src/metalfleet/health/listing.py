"""Listing signals for the API and the CLI (keyset pages, like every other list)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from metalfleet.core.errors import ValidationError
from metalfleet.db import health_models as hm
from metalfleet.db import models as m
from metalfleet.inventory.pagination import paginate, split_page

SIGNAL_STATUSES = ("active", "cleared")

if TYPE_CHECKING:
    from metalfleet.policy import Scope


def list_signals(session: Session, *, node: str | None = None, status: str | None = None,
                 check: str | None = None, limit: int = 100, cursor: str | None = None,
                 scope: Scope | None = None,
                 ) -> tuple[list[tuple[hm.HealthSignal, str]], str | None]:
    """(signal, node name) pairs; ``scope`` is the caller's access policy (policy.py)."""
    statement: Select[Any] = select(  # type: ignore[assignment]
        hm.HealthSignal, m.Node.name).join(m.Node, m.Node.id == hm.HealthSignal.node_id)
    if scope is not None:
        statement = scope(statement)
    if node is not None:
        statement = statement.where(m.Node.name == node)
    if status is not None:
        if status not in SIGNAL_STATUSES:
            raise ValidationError(f"status must be one of {', '.join(SIGNAL_STATUSES)}",
                                  field="status")
        statement = statement.where(hm.HealthSignal.status == status)
    if check is not None:
        statement = statement.where(hm.HealthSignal.check == check)
    rows = [(row[0], row[1]) for row in session.execute(
        paginate(statement, hm.HealthSignal.id, limit, cursor))]
    return split_page(rows, limit, lambda row: row[0].id)
