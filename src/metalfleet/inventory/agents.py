"""The agent protocol, server side: lookup by MAC, heartbeats, and the command hand-off.

A booted agent POSTs its MACs and inventory (lookup) and gets a per-boot token; then it
heartbeats with that token, reporting the state of its current command and receiving the
next one. The conductor queues commands here and reads their results (conductor/
agent_channel.py). Everything goes through the database, so any API process can serve any
agent and any conductor can drive it.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from metalfleet.core.errors import AuthenticationError, ConflictError, NotFoundError
from metalfleet.core.states import NodeState
from metalfleet.db import models as m
from metalfleet.db.agent_models import AgentSession
from metalfleet.db.base import utcnow
from metalfleet.inventory import discovery, events
from metalfleet.inventory.tokens import hash_token

# States in which a node runs the deploy ramdisk and expects its agent.
AGENT_STATES = frozenset({NodeState.INSPECTING.value, NodeState.BURNING_IN.value,
                          NodeState.DEPLOYING.value, NodeState.CLEANING.value})
HEARTBEAT_INTERVAL_S = 2.0
REPORTED = ("status", "percent", "step", "result", "error")


def lookup(session: Session, macs: list[str], *, address: str | None,
           inventory: dict[str, Any]) -> tuple[m.Node, str]:
    normal = [mac.strip().lower() for mac in macs]
    node = session.scalar(
        select(m.Node).join(m.Port).where(m.Port.mac.in_(normal)).limit(1)
    )
    if node is None:
        raise NotFoundError(
            f"no node has a port with MAC {', '.join(normal) or '(none sent)'}; enrol the node "
            "with its MACs first"
        )
    if node.state not in AGENT_STATES:
        raise ConflictError(
            f"node {node.name!r} is {node.state}; its agent is only wanted while inspecting, "
            "burning in, deploying or cleaning"
        )
    token = secrets.token_urlsafe(32)
    agent = session.get(AgentSession, node.id)
    if agent is None:
        agent = AgentSession(node_id=node.id, token_hash="")
        session.add(agent)
    agent.token_hash = hash_token(token)
    agent.address = address
    agent.booted_at = agent.heartbeat_at = utcnow()
    agent.inventory = inventory
    agent.command = {}
    events.record(session, node=node, kind="agent", actor="agent",
                  message=f"agent booted and looked up from {address or 'unknown address'}")
    session.flush()
    return node, token


def discover_lookup(session: Session, macs: list[str], *, address: str | None,
                    inventory: dict[str, Any],
                    boot_mac: str | None) -> tuple[m.Node, str | None, bool]:
    """Lookup from the discovery ramdisk: unknown MACs become a node (no token, nothing to
    do); a node with work for its agent gets a token as in :func:`lookup`.

    Returns the node, the token (None when the agent should power off) and whether the
    node was created now.
    """
    normal = discovery.normal_macs(macs)
    node = discovery.find_by_macs(session, normal)
    if node is None:
        node, created = discovery.discover(session, normal, inventory=inventory,
                                           boot_mac=boot_mac, address=address)
        return node, None, created
    if node.state in AGENT_STATES:
        node, token = lookup(session, normal, address=address, inventory=inventory)
        return node, token, False
    if node.state == NodeState.ENROLLED.value and node.bmc_driver == discovery.NO_BMC:
        node.inventory = inventory  # booted discovery again: keep the latest report
    return node, None, False


def heartbeat(session: Session, node_name: str, token: str,
              report: dict[str, Any]) -> dict[str, Any] | None:
    """Record a heartbeat and the command's state; return a command the agent should start."""
    node = session.scalar(select(m.Node).where(m.Node.name == node_name))
    agent = session.get(AgentSession, node.id) if node is not None else None
    if agent is None or not secrets.compare_digest(agent.token_hash, hash_token(token)):
        raise AuthenticationError(
            "unknown agent or stale token; the agent must look up again (reboot it)"
        )
    agent.heartbeat_at = utcnow()
    command = dict(agent.command or {})
    if command and report.get("command_id") == command.get("id"):
        command.update({key: report[key] for key in REPORTED if key in report})
        agent.command = command
    if command.get("status") == "pending":
        return {key: command[key] for key in ("id", "name", "args")}
    return None


def queue_command(session: Session, node_id: str, name: str, args: dict[str, Any]) -> str:
    agent = session.get(AgentSession, node_id)
    if agent is None:
        raise ConflictError("the node's agent has not looked up; it cannot take commands")
    command_id = uuid.uuid4().hex
    agent.command = {"id": command_id, "name": name, "args": args, "status": "pending"}
    return command_id
