"""Node monitor credentials: a secret that speaks for one node's health reports, nothing else.

``metalfleet-agent monitor`` runs on a deployed node, where the tenant has root: whatever
secret it holds, the tenant holds. So it holds this one, not an operator token. A node
credential is stored hashed in its own table (never in ``api_tokens``), is accepted only by
``POST /v1/nodes/{its node}/health-reports`` (api/routes/node_credentials.py), and every
other route refuses it with 403 (api/deps.get_principal). Issuing a new one replaces the old;
deleting the node removes it; undeploying the node (its tenancy ends) revokes it.
"""

from __future__ import annotations

import secrets

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from metalfleet.core.errors import AuthenticationError, PermissionDeniedError
from metalfleet.db import models as m
from metalfleet.db.base import utcnow
from metalfleet.db.node_credential_models import NocloudSeed, NodeCredential
from metalfleet.inventory import events
from metalfleet.inventory import schemas as s
from metalfleet.inventory.tokens import Principal, hash_token

PREFIX = "mfn_"  # API tokens start with "mf_": the two kinds never collide
ONLY_HEALTH_REPORTS = (
    "a node monitor credential may only post its own node's health reports "
    "(POST /v1/nodes/NAME/health-reports); use an API token for anything else"
)


def issue(session: Session, node: m.Node, *, actor: str) -> str:
    """A new credential for ``node``; the old one (if any) stops working. Returns the secret,
    which is not stored and cannot be shown again."""
    session.execute(delete(NodeCredential).where(NodeCredential.node_id == node.id))
    secret = PREFIX + secrets.token_urlsafe(32)
    session.add(NodeCredential(node_id=node.id, secret_hash=hash_token(secret),
                               prefix=secret[:10], created_by=actor[:128]))
    events.record(session, node=node, kind="info", actor=actor,
                  message=f"monitor credential issued for {node.name} (any older one revoked)")
    session.flush()
    return secret


def revoke(session: Session, node: m.Node, *, actor: str, why: str = "revoked") -> bool:
    """Remove ``node``'s credential; False when it had none."""
    gone = session.execute(delete(NodeCredential).where(NodeCredential.node_id == node.id))
    if not getattr(gone, "rowcount", 0):
        return False
    events.record(session, node=node, kind="info", actor=actor,
                  message=f"monitor credential of {node.name} {why}")
    return True


def tenancy_ended(session: Session, node: m.Node, *, actor: str) -> None:
    """Undeploy: the monitor credential and the NoCloud seed of this tenancy stop working."""
    revoke(session, node, actor=actor, why="revoked: the node was undeployed")
    session.execute(delete(NocloudSeed).where(NocloudSeed.node_id == node.id))


def is_node_credential(session: Session, secret: str) -> bool:
    """True for a live node credential (only these are refused with 403 elsewhere; a revoked
    one is simply unknown: 401)."""
    if not secret.startswith(PREFIX):
        return False
    found = session.scalar(select(NodeCredential.node_id)
                           .where(NodeCredential.secret_hash == hash_token(secret)))
    return found is not None


def authenticate(session: Session, secret: str) -> Principal:
    """The node a credential speaks for, as a NODE principal; 401 when it is not known."""
    row = (session.scalar(select(NodeCredential)
                          .where(NodeCredential.secret_hash == hash_token(secret)))
           if secret.startswith(PREFIX) else None)
    node = session.get(m.Node, row.node_id) if row is not None else None
    if row is None or node is None:
        raise AuthenticationError("the node credential is not known (revoked or replaced); "
                                  "issue one with `metalfleet node monitor-credential NAME`")
    session.execute(update(NodeCredential).where(NodeCredential.node_id == row.node_id)
                    .values(last_used_at=utcnow()).execution_options(synchronize_session=False))
    return Principal(name=f"node:{node.name}", role=s.Role.NODE, node_id=node.id)


def require_node(principal: Principal, node: m.Node) -> None:
    """A NODE principal speaks only for its own node (403 for any other)."""
    if principal.role is s.Role.NODE and principal.node_id != node.id:
        raise PermissionDeniedError(
            f"this node credential speaks for another node, not {node.name}")
