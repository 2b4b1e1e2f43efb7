"""Dashboard sessions: open on sign-in, resolve per request, close on sign-out.

The browser's cookie carries a random session id, never the API token: a stolen cookie is
not a bearer token (the API does not know it), dies after ``idle`` without use and after
``max_age`` in any case, and dies at once with its token (each request re-checks the token,
so a revoked or expired token ends every session opened with it). Only the id's hash is
stored, like tokens' (db/web_session_models.py).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from metalfleet.core.errors import AuthenticationError
from metalfleet.db import models as m
from metalfleet.db.base import as_utc, utcnow
from metalfleet.db.web_session_models import WebSession
from metalfleet.inventory import tokens
from metalfleet.inventory.tokens import Principal

# How stale ``last_seen_at`` may get before a request writes it again (idle accuracy).
SEEN_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class Lifetime:
    max_age: timedelta
    idle: timedelta


def open_session(session: Session, secret: str, lifetime: Lifetime,
                 address: str | None = None) -> tuple[str, Principal]:
    """Sign in with an API token: a new session id (shown once) and who it belongs to."""
    token = session.scalar(
        select(m.ApiToken).where(m.ApiToken.token_hash == tokens.hash_token(secret))
    )
    if token is None:
        raise AuthenticationError("the token is not known; paste the whole token (mf_...)")
    principal = tokens.principal_of(session, token)  # refuses an expired token
    now = utcnow()
    _sweep(session, lifetime, now)
    session_id = secrets.token_urlsafe(32)
    session.add(WebSession(id_hash=tokens.hash_token(session_id), token_id=token.id,
                           created_at=now, last_seen_at=now, expires_at=now + lifetime.max_age,
                           address=(address or "")[:64] or None))
    return session_id, principal


def resolve(session: Session, session_id: str, lifetime: Lifetime) -> Principal | None:
    """Who a live session belongs to; None once it expired, idled or lost its token.

    A dead session's row is deleted here (returning, not raising, so the delete commits).
    """
    row = session.get(WebSession, tokens.hash_token(session_id))
    if row is None:
        return None
    now = utcnow()
    token = session.get(m.ApiToken, row.token_id)
    if (as_utc(row.expires_at) <= now or as_utc(row.last_seen_at) + lifetime.idle <= now
            or token is None):  # None: deleted where foreign keys did not cascade
        session.delete(row)
        return None
    try:
        principal = tokens.principal_of(session, token)
    except AuthenticationError:  # the token expired: its sessions end with it
        session.delete(row)
        return None
    if now - as_utc(row.last_seen_at) >= SEEN_EVERY:
        session.execute(update(WebSession).where(WebSession.id_hash == row.id_hash)
                        .values(last_seen_at=now).execution_options(synchronize_session=False))
    return principal


def close(session: Session, session_id: str) -> None:
    """Sign out: the session id is dead even if someone kept a copy of the cookie."""
    session.execute(delete(WebSession).where(WebSession.id_hash == tokens.hash_token(session_id)))


def _sweep(session: Session, lifetime: Lifetime, now: datetime) -> None:
    """Drop sessions that can no longer be used (on each sign-in: cheap, indexed)."""
    session.execute(delete(WebSession).where(or_(
        WebSession.expires_at <= now, WebSession.last_seen_at <= now - lifetime.idle)))
