"""Dependencies shared by the routes: the app context, a DB session, the caller and roles."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from metalfleet import policy
from metalfleet.core.errors import AuthenticationError, PermissionDeniedError
from metalfleet.inventory import node_credentials, tokens
from metalfleet.inventory.schemas import Role
from metalfleet.inventory.tokens import Principal
from metalfleet.runtime import AppContext


def get_context(request: Request) -> AppContext:
    context: AppContext = request.app.state.context
    return context


Context = Annotated[AppContext, Depends(get_context)]


def get_session(context: Context) -> Iterator[Session]:
    """One transaction per request, committed when the route returns without error."""
    session = context.db.sessions()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


DbSession = Annotated[Session, Depends(get_session)]


def get_principal(request: Request, context: Context) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise AuthenticationError(
            "send 'Authorization: Bearer <token>'; the admin token is in <data-dir>/admin.token"
        )
    with context.db.session() as session:
        if node_credentials.is_node_credential(session, secret.strip()):
            # refused, but the audit log names the node that tried (not "anonymous")
            request.state.principal = node_credentials.authenticate(session, secret.strip())
            raise PermissionDeniedError(node_credentials.ONLY_HEALTH_REPORTS)
        principal = tokens.authenticate(session, secret.strip())
    request.state.principal = principal  # the audit log reads who called
    return principal


Caller = Annotated[Principal, Depends(get_principal)]

# The role sets live with the rest of the access policy (metalfleet/policy.py).
READ, WRITE, ADMIN = policy.READ, policy.WRITE, policy.ADMIN


def require(roles: frozenset[Role], what: str) -> Callable[[Principal], Principal]:
    """A route dependency: the caller, if its role is one of ``roles`` (policy.require_role)."""
    def check(caller: Caller) -> Principal:
        policy.require_role(caller, roles, what)
        return caller

    return check
