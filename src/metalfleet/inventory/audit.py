"""Reading the audit log: search newest first with a keyset cursor, export oldest first.

Rows are written by the API's audit middleware (metalfleet.api.audit) and never change, so an
id is a stable cursor: a search page ends at an id and the next page starts below it; an
export (for a SIEM) walks upwards from an id and can resume from the last one it saw.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from metalfleet.core.errors import ValidationError
from metalfleet.db.audit_models import AuditEntry
from metalfleet.db.base import as_utc
from metalfleet.db.session import Database
from metalfleet.inventory.pagination import check_limit

EXPORT_BATCH = 500


class Outcome(StrEnum):
    OK = "ok"  # status < 400
    REFUSED = "refused"  # status >= 400: unauthenticated, forbidden, invalid, conflict, ...


class AuditEntryOut(BaseModel):
    """One audit row as the API and the export show it."""

    id: int
    time: datetime
    principal: str
    role: str | None
    tenant: str | None
    node: str | None
    source: str | None
    method: str
    path: str
    target: str | None
    status: int
    outcome: Outcome
    request_id: str


@dataclass(frozen=True)
class AuditFilter:
    """What to look for; every field narrows the search, None means any."""

    principal: str | None = None
    target: str | None = None
    method: str | None = None
    path_prefix: str | None = None
    status: int | None = None
    outcome: Outcome | None = None
    since: datetime | None = None
    until: datetime | None = None


def _utc(value: datetime) -> datetime:
    """Compare in UTC on both databases (SQLite stores the UTC wall-clock time)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _filtered(query: AuditFilter) -> Select[Any]:
    statement = select(AuditEntry)
    if query.principal is not None:
        statement = statement.where(AuditEntry.principal == query.principal)
    if query.target is not None:
        statement = statement.where(AuditEntry.target == query.target)
    if query.method is not None:
        statement = statement.where(AuditEntry.method == query.method.upper())
    if query.path_prefix:
        statement = statement.where(AuditEntry.path.startswith(query.path_prefix,
                                                               autoescape=True))
    if query.status is not None:
        statement = statement.where(AuditEntry.status == query.status)
    if query.outcome is Outcome.OK:
        statement = statement.where(AuditEntry.status < 400)
    elif query.outcome is Outcome.REFUSED:
        statement = statement.where(AuditEntry.status >= 400)
    if query.since is not None:
        statement = statement.where(AuditEntry.time >= _utc(query.since))
    if query.until is not None:
        statement = statement.where(AuditEntry.time < _utc(query.until))
    return statement


def decode_cursor(cursor: str | None) -> int | None:
    if cursor is None or cursor == "":
        return None
    if not cursor.isdigit() or len(cursor) > 19:
        raise ValidationError("the cursor is not one this server handed out; pass the 'next' "
                              "value of the previous page unchanged")
    return int(cursor)


def search(session: Session, query: AuditFilter, *, cursor: str | None = None,
           limit: int = 100) -> tuple[list[AuditEntry], str | None]:
    """Matching rows newest first; ``next`` (an id) continues below the last one."""
    check_limit(limit)
    statement = _filtered(query)
    before = decode_cursor(cursor)
    if before is not None:
        statement = statement.where(AuditEntry.id < before)
    rows = list(session.scalars(statement.order_by(AuditEntry.id.desc()).limit(limit + 1)))
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, str(rows[-1].id)
    return rows, None


def export(db: Database, query: AuditFilter, *, after: int | None = None) -> Iterator[str]:
    """Matching rows oldest first as JSON lines, read in short transactions of a batch each
    (a long export holds no transaction open and sees rows added while it runs)."""
    last = after if after is not None else 0
    while True:
        with db.session() as session:
            statement = _filtered(query).where(AuditEntry.id > last)
            rows = list(session.scalars(statement.order_by(AuditEntry.id).limit(EXPORT_BATCH)))
            lines = [entry_out(row).model_dump_json() + "\n" for row in rows]
        yield from lines
        if len(rows) < EXPORT_BATCH:
            return
        last = rows[-1].id


def entry_out(entry: AuditEntry) -> AuditEntryOut:
    return AuditEntryOut(
        id=entry.id, time=as_utc(entry.time), principal=entry.principal, role=entry.role,
        tenant=entry.tenant, node=entry.node, source=entry.source, method=entry.method,
        path=entry.path, target=entry.target, status=entry.status,
        outcome=Outcome.OK if entry.status < 400 else Outcome.REFUSED,
        request_id=entry.request_id,
    )

