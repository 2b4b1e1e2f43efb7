"""Per-node secrets: the in-band monitor's credential and the per-deploy NoCloud seed secret.

Both are stored only as SHA-256 hashes (inventory/tokens.hash_token), one row per node, and
go with the node (ON DELETE CASCADE). They live apart from ``api_tokens`` on purpose: a node
credential is not a role and can never pass a role check; it only speaks for its own node.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from metalfleet.db.base import Base, utcnow


class NodeCredential(Base):
    """The monitor credential of a node: it may post that node's health reports, nothing
    else. Issuing a new one replaces the row (the old secret stops working)."""

    __tablename__ = "node_credentials"
    node_id: Mapped[str] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True
    )
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)


class NocloudSeed(Base):
    """The NoCloud seed secret of a node's current deploy: the seed URL names it instead of
    a MAC. ``first_boot_at`` is set by the first meta-data fetch (the first-boot callback);
    the seed is served for a short window after it, then never again."""

    __tablename__ = "nocloud_seeds"
    node_id: Mapped[str] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True
    )
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    first_boot_at: Mapped[datetime | None] = mapped_column(default=None)
