"""Per-boot agent secrets: the agent proves it booted from the node's own iPXE script.

A lookup by MAC alone would let anyone on the provisioning network who knows a node's MAC
(it is on the wire, in every DHCP request) take over its agent and report a wipe, deploy or
burn-in as done. So each boot into the ramdisk carries a secret, and everything lives in the
database (``agent_boots``), so any API process and any conductor agree:

- :func:`begin`: the conductor starts a step that boots the ramdisk (inspect, burn-in,
  deploy, clean); a new boot attempt replaces the node's previous one.
- :func:`ipxe_secret`: the node's first iPXE fetch in the attempt gets a fresh secret for
  the kernel command line (``metalfleet.boot_secret=...``); only its hash is stored. A later
  fetch in the same attempt gets none and marks the attempt suspect: someone else asked for
  this node's boot script, and whoever got the secret may not be the node.
- :func:`prove`: a lookup must carry the secret, and it is accepted once. A second lookup
  with it is a replay: the attempt is marked and the step fails, never as success.
- :func:`suspicion`: what the conductor's agent channel polls to fail the step.

Each of those writes at most one event per attempt, so anonymous callers cannot fill the
event log.
"""

from __future__ import annotations

import enum
import secrets
import uuid
from datetime import datetime

from sqlalchemy import delete, func, update
from sqlalchemy.orm import Session

from metalfleet.db import models as m
from metalfleet.db.agent_models import AgentBoot
from metalfleet.db.base import as_utc, utcnow
from metalfleet.db.session import Database, rowcount
from metalfleet.inventory import events
from metalfleet.inventory.tokens import hash_token

REFETCHED = ("the node's iPXE script was fetched again in the same boot attempt (from "
             "{address}); someone else may hold this boot's secret")
REPLAYED = ("a second agent lookup used this boot's secret (from {address}); someone else "
            "may be posing as the node's agent")


class Proof(enum.Enum):
    OK = "ok"  # the secret is this attempt's and was not used before: hand out a token
    WRONG = "wrong"  # no attempt, no secret issued, or not its secret
    REPLAYED = "replayed"  # the right secret, already spent: the attempt is now suspect


def begin(db: Database, node_id: str, step: str) -> str:
    """A new boot attempt for ``node_id`` in ``step``; the previous one stops counting."""
    attempt = uuid.uuid4().hex
    with db.session() as session:
        session.execute(delete(AgentBoot).where(AgentBoot.node_id == node_id)
                        .execution_options(synchronize_session=False))
        session.add(AgentBoot(node_id=node_id, attempt=attempt, step=step,
                              begun_at=utcnow()))
    return attempt


def _current(session: Session, node: m.Node) -> AgentBoot | None:
    """The node's attempt, if it belongs to the step the node is in now."""
    boot = session.get(AgentBoot, node.id, populate_existing=True)
    if boot is None or boot.step != node.state:
        return None
    return boot


def ipxe_secret(session: Session, node: m.Node, *, mac: str,
                address: str | None) -> str | None:
    """The secret for this boot's kernel command line, handed out once per attempt.

    None when the node has no attempt in its current step (nothing is written) or when the
    secret was already handed out (the attempt becomes suspect; one security event)."""
    boot = _current(session, node)
    if boot is None:
        return None
    secret = secrets.token_urlsafe(32)
    now = utcnow()
    issue = (update(AgentBoot)
             .where(AgentBoot.node_id == boot.node_id, AgentBoot.attempt == boot.attempt,
                    AgentBoot.secret_hash.is_(None))
             .values(secret_hash=hash_token(secret), issued_at=now, ipxe_address=address)
             .execution_options(synchronize_session=False))
    if rowcount(session.execute(issue)):
        events.record(session, node=node, kind="boot", actor="ipxe",
                      message=f"network boot into the deploy ramdisk from {mac} "
                              f"({node.state}); its boot secret was handed out")
        return secret
    reason = REFETCHED.format(address=address or "an unknown address")
    mark = (update(AgentBoot)
            .where(AgentBoot.node_id == boot.node_id, AgentBoot.attempt == boot.attempt,
                   AgentBoot.refetched_at.is_(None))
            .values(refetched_at=now, suspicion=func.coalesce(AgentBoot.suspicion, reason))
            .execution_options(synchronize_session=False))
    if rowcount(session.execute(mark)):
        events.record(session, node=node, kind="security", actor="ipxe",
                      message=f"{reason}; the ramdisk was served without a secret and the "
                              f"{node.state} step fails",
                      data={"mac": mac, "address": address,
                            "first_address": boot.ipxe_address})
    return None


def prove(session: Session, node: m.Node, secret: str, *, address: str | None) -> Proof:
    """Check a lookup's secret against the node's attempt; spend it when it is right."""
    boot = _current(session, node)
    if boot is None or boot.secret_hash is None or not secret:
        return Proof.WRONG
    if not secrets.compare_digest(boot.secret_hash, hash_token(secret)):
        return Proof.WRONG
    now = utcnow()
    spend = (update(AgentBoot)
             .where(AgentBoot.node_id == boot.node_id, AgentBoot.attempt == boot.attempt,
                    AgentBoot.used_at.is_(None))
             .values(used_at=now, lookup_address=address)
             .execution_options(synchronize_session=False))
    if rowcount(session.execute(spend)):
        return Proof.OK
    reason = REPLAYED.format(address=address or "an unknown address")
    mark = (update(AgentBoot)
            .where(AgentBoot.node_id == boot.node_id, AgentBoot.attempt == boot.attempt,
                   AgentBoot.replayed_at.is_(None))
            .values(replayed_at=now, suspicion=func.coalesce(AgentBoot.suspicion, reason))
            .execution_options(synchronize_session=False))
    if rowcount(session.execute(mark)):
        first = session.get(AgentBoot, node.id, populate_existing=True)
        events.record(session, node=node, kind="security", actor="agent",
                      message=f"{reason}; the lookup was refused and the {node.state} step "
                              "fails",
                      data={"address": address,
                            "first_lookup_address": first.lookup_address if first else None})
    return Proof.REPLAYED


def suspicion(session: Session, node_id: str, since: datetime) -> str | None:
    """Why the node's boot attempt begun at or after ``since`` is suspect; None if it is not."""
    boot = session.get(AgentBoot, node_id, populate_existing=True)
    if boot is None or boot.suspicion is None or as_utc(boot.begun_at) < since:
        return None
    return boot.suspicion
