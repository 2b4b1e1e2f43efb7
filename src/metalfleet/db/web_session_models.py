"""Dashboard sessions: what the browser's cookie names, instead of the long-lived API token.

A signed-in browser holds a random session id; the table keeps only its SHA-256 hash, the
token it was opened with (a revoked token takes its sessions with it: ON DELETE CASCADE, and
every request re-checks the token), an absolute expiry and the last time it was seen (the
idle timeout). A stolen cookie is therefore worth hours at most, never the token itself.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from metalfleet.db.base import Base, utcnow


class WebSession(Base):
    __tablename__ = "web_sessions"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_id: Mapped[str] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    address: Mapped[str | None] = mapped_column(String(64), default=None)
