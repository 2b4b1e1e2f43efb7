"""API tokens: created once, stored as a SHA-256 hash, looked up per request."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from metalfleet.core.errors import AuthenticationError, ConflictError
from metalfleet.db import models as m
from metalfleet.db.base import utcnow
from metalfleet.inventory import schemas as s
from metalfleet.inventory.resources import resolve_ref

TOKEN_PREFIX = "mf_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's name, its role and, for members, its tenant."""

    name: str
    role: s.Role
    tenant_id: str | None = None
    tenant_name: str | None = None

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
    if token.expires_at is not None:
        expires = token.expires_at if token.expires_at.tzinfo else token.expires_at.replace(
            tzinfo=utcnow().tzinfo)
        if expires < utcnow():
            raise AuthenticationError(f"token {token.name!r} expired; ask an admin for a new one")
    return Principal(
        name=token.name,
        role=s.Role(token.role),
        tenant_id=token.tenant_id,
        tenant_name=token.tenant.name if token.tenant else None,
    )


def token_out(token: m.ApiToken) -> s.TokenOut:
    return s.TokenOut(
        id=token.id, name=token.name, prefix=token.prefix, role=token.role,
        tenant=token.tenant.name if token.tenant else None, expires_at=token.expires_at,
        last_used_at=token.last_used_at, created_at=token.created_at,
    )
