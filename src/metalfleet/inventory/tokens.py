"""API tokens: created once, stored as a SHA-256 hash, looked up per request."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from metalfleet.core.errors import AuthenticationError, ConflictError
from metalfleet.db import models as m
from metalfleet.db.base import as_utc, utcnow
from metalfleet.inventory import schemas as s
from metalfleet.inventory.resources import resolve_ref

TOKEN_PREFIX = "mf_"
# How stale ``last_used_at`` may get before a call writes it again.
LAST_USED_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's name, its role and, for members, its tenant."""

    name: str
    role: s.Role
    tenant_id: str | None = None
    tenant_name: str | None = None
    # Set only for a node's monitor credential (role NODE): the one node it speaks for.
    node_id: str | None = None

    @property
    def actor(self) -> str:
        return f"token:{self.name}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, data: s.TokenIn) -> tuple[m.ApiToken, str]:
    if session.scalar(select(m.ApiToken.id).where(m.ApiToken.name == data.name)):
        raise ConflictError(f"a token named {data.name!r} already exists; pick another name")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = m.ApiToken(
        name=data.name,
        token_hash=hash_token(secret),
        prefix=secret[:10],
        role=data.role.value,
        tenant=resolve_ref(session, m.Tenant, data.tenant, "tenant") if data.tenant else None,
        expires_at=data.expires_at,
    )
    session.add(token)
    session.flush()
    return token, secret


def authenticate(session: Session, secret: str) -> Principal:
    token = session.scalar(select(m.ApiToken).where(m.ApiToken.token_hash == hash_token(secret)))
    if token is None:
        raise AuthenticationError(
            "the bearer token is not known; check METALFLEET_TOKEN or <data-dir>/admin.token"
        )
    return principal_of(session, token)


def principal_of(session: Session, token: m.ApiToken) -> Principal:
    """The caller behind a known token: refused once it expired; records its last use."""
    now = utcnow()
    if token.expires_at is not None and as_utc(token.expires_at) < now:
        raise AuthenticationError(f"token {token.name!r} expired; ask an admin for a new one")
    record_use(session, token, now)
    return Principal(
        name=token.name,
        role=s.Role(token.role),
        tenant_id=token.tenant_id,
        tenant_name=token.tenant.name if token.tenant else None,
    )


def record_use(session: Session, token: m.ApiToken, now: datetime) -> None:
    """Write ``last_used_at`` at most once a minute, so a busy client is not a write per call.

    A conditional UPDATE (not the ORM) so concurrent calls do not fight over the row and the
    token's ``updated_at`` keeps meaning "changed by an admin".
    """
    if token.last_used_at is not None and now - as_utc(token.last_used_at) < LAST_USED_EVERY:
        return
    session.execute(
        update(m.ApiToken)
        .where(m.ApiToken.id == token.id,
               or_(m.ApiToken.last_used_at.is_(None),
                   m.ApiToken.last_used_at < now - LAST_USED_EVERY))
        .values(last_used_at=now, updated_at=m.ApiToken.updated_at)
        .execution_options(synchronize_session=False)
    )


def token_out(token: m.ApiToken) -> s.TokenOut:
    return s.TokenOut(
        id=token.id, name=token.name, prefix=token.prefix, role=token.role,
        tenant=token.tenant.name if token.tenant else None, expires_at=token.expires_at,
        last_used_at=token.last_used_at, created_at=token.created_at,
    )
