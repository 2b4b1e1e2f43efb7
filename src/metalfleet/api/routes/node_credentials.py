"""Node monitor credentials: issued and revoked by operators, used by ``metalfleet-agent
monitor`` on the deployed node (inventory/node_credentials.py says why it is not a token).

``reporter`` is the one dependency that accepts a node credential: the health-reports route
(api/routes/health.py) and the monitor's read of its own expected inventory use it. A node
credential naming another node gets 403 before that node is even looked up, so it cannot
probe which nodes exist.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from metalfleet.api.deps import WRITE, Context, DbSession, get_principal, require
from metalfleet.core.errors import NotFoundError, PermissionDeniedError
from metalfleet.inventory import node_credentials
from metalfleet.inventory.lifecycle import load_node
from metalfleet.inventory.tokens import Principal

router = APIRouter(tags=["nodes"])
issuer = Depends(require(WRITE, "issuing node monitor credentials"))


class MonitorCredentialOut(BaseModel):
    node: str
    prefix: str
    credential: str = Field(description="shown once; it may post this node's health "
                                        "reports and nothing else")


def reporter(request: Request, context: Context, name: str) -> Principal:
    """The named node's own monitor credential, or an operator or admin token."""
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret.startswith(node_credentials.PREFIX):
        return require(WRITE, "posting health reports (or the node's own monitor "
                       "credential)")(get_principal(request, context))
    with context.db.session() as session:
        principal = node_credentials.authenticate(session, secret)
    request.state.principal = principal  # the audit log reads who called, refused or not
    if principal.name != f"node:{name}":
        raise PermissionDeniedError("this node credential speaks for another node; it may "
                                    "post only its own node's health reports")
    return principal


Reporter = Depends(reporter)


@router.post("/v1/nodes/{name}/monitor-credential", response_model=MonitorCredentialOut,
             status_code=201)
def issue_credential(session: DbSession, name: str,
                     caller: Principal = issuer) -> MonitorCredentialOut:
    """A new monitor credential for the node (the old one stops working); shown once."""
    node = load_node(session, name)
    secret = node_credentials.issue(session, node, actor=caller.actor)
    return MonitorCredentialOut(node=node.name, prefix=secret[:10], credential=secret)


@router.delete("/v1/nodes/{name}/monitor-credential", status_code=204)
def revoke_credential(session: DbSession, name: str, caller: Principal = issuer) -> Response:
    node = load_node(session, name)
    if not node_credentials.revoke(session, node, actor=caller.actor):
        raise NotFoundError(f"node {name} has no monitor credential")
    return Response(status_code=204)


@router.get("/v1/nodes/{name}/monitor-expectations")
def monitor_expectations(session: DbSession, name: str,
                         caller: Principal = Reporter) -> dict[str, Any]:
    """What the monitor's checks compare against: the node's inspected inventory (GPU
    count, IB ports...), for the node's own credential or an operator."""
    node = load_node(session, name)
    del caller  # only checked: the node's own credential, an operator or an admin
    return {"node": node.name, "inventory": dict(node.inventory or {})}
