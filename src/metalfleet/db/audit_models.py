"""The audit log: one row per mutating API or dashboard call, never changed, never deleted.

The API's audit middleware (metalfleet.api.audit) writes the rows; metalfleet.inventory.audit
reads them. The table is append-only in the database too (migration 0006 adds triggers that
refuse UPDATE and DELETE), so even a bug or a stolen database login through the application
cannot rewrite history. No column ever holds a secret: no bodies, headers or query values.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from metalfleet.db.base import Base, utcnow

TABLE = "audit_log"


class AuditEntry(Base):
    """Who did what to which resource, from where, and how it ended (the HTTP status)."""

    __tablename__ = TABLE
    # An integer id: insertion order across processes, and the keyset cursor for paging.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    time: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    principal: Mapped[str] = mapped_column(String(127), index=True)  # token name | "anonymous"
    role: Mapped[str | None] = mapped_column(String(16), default=None)
    tenant: Mapped[str | None] = mapped_column(String(63), default=None)
    node: Mapped[str | None] = mapped_column(String(63), default=None)  # node-scoped principal
    source: Mapped[str | None] = mapped_column(String(64), default=None)  # client address
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(512))  # no query string
    target: Mapped[str | None] = mapped_column(String(255), default=None, index=True)
    status: Mapped[int] = mapped_column(Integer)
    request_id: Mapped[str] = mapped_column(String(64))
