"""The agent protocol, server side: lookup with the per-boot secret, heartbeats, and the
command hand-off.

A booted agent POSTs its MACs, inventory and the boot secret from its kernel command line
(inventory/agent_auth.py) and gets a per-boot token; then it heartbeats with that token,
reporting the state of the command it was handed and receiving the next one. The conductor
queues commands here and reads their results (conductor/agent_channel.py). Everything goes
through the database, so any API process can serve any agent and any conductor can drive it.

Until the secret is proven nothing is disclosed: every refused lookup gets the same 401,
whether the MACs are unknown, the node is not in a step, or the secret is missing or wrong.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from metalfleet.core.errors import AuthenticationError, ConflictError
from metalfleet.core.states import NodeState
from metalfleet.db import models as m
from metalfleet.db.agent_models import AgentSession
from metalfleet.db.base import utcnow
from metalfleet.db.session import Database
from metalfleet.inventory import agent_auth, discovery, events
from metalfleet.inventory.tokens import hash_token

# States in which a node runs the deploy ramdisk and expects its agent.
AGENT_STATES = frozenset({NodeState.INSPECTING.value, NodeState.BURNING_IN.value,
                          NodeState.DEPLOYING.value, NodeState.CLEANING.value})
HEARTBEAT_INTERVAL_S = 2.0
REPORTED = ("status", "percent", "step", "result", "error")
FINISHED = frozenset({"done", "failed"})
MAX_MACS = 64
REFUSED = ("no boot of a node with these MACs accepts this lookup: the agent must run in the "
           "ramdisk the node booted from its own iPXE script, which puts a one-time "
           "metalfleet.boot_secret on the kernel command line (a lookup by MAC alone is not "
           "accepted)")


def _refused() -> AuthenticationError:
    return AuthenticationError(REFUSED)


def _hand_out(session: Session, node: m.Node, *, address: str | None,
              inventory: dict[str, Any]) -> str:
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
                  message=f"agent booted and proved its boot secret from "
                          f"{address or 'unknown address'}")
    session.flush()
    return token


def lookup(db: Database, macs: list[str], *, address: str | None, inventory: dict[str, Any],
           secret: str | None) -> tuple[str, str]:
    """(node name, per-boot token) for the agent that proves this boot's secret.

    AuthenticationError (always the same) otherwise; ConflictError for a replayed secret,
    after marking the boot attempt suspect (committed: the conductor fails the step)."""
    normal = discovery.normal_macs(macs)
    with db.session() as session:
        node = discovery.find_by_macs(session, normal)
        if node is None or node.state not in AGENT_STATES or not secret:
            raise _refused()
        proof = agent_auth.prove(session, node, secret, address=address)
        if proof is agent_auth.Proof.WRONG:
            raise _refused()
        if proof is agent_auth.Proof.OK:
            return node.name, _hand_out(session, node, address=address, inventory=inventory)
    raise ConflictError("this boot secret was already used by another lookup: agent hijack "
                        "suspected; the step fails and no token is handed out")


def discover_lookup(db: Database, macs: list[str], *, address: str | None,
                    inventory: dict[str, Any], boot_mac: str | None,
                    secret: str | None) -> tuple[str | None, str | None, bool]:
    """Lookup from the discovery ramdisk: unknown MACs become a node (no token, nothing to
    do); a node in a step still needs its boot secret as in :func:`lookup`.

    Returns the node's name (only for a node created now or a proven agent: an anonymous
    caller learns no existing node's name), the token (None when the agent should power
    off) and whether the node was created now.
    """
    normal = discovery.normal_macs(macs)
    with db.session() as session:
        node = discovery.find_by_macs(session, normal)
        if node is None:
            node, created = discovery.discover(session, normal, inventory=inventory,
                                               boot_mac=boot_mac, address=address)
            return (node.name, None, True) if created else (None, None, False)
        in_step = node.state in AGENT_STATES
        if not in_step and node.state == NodeState.ENROLLED.value \
                and node.bmc_driver == discovery.NO_BMC:
            node.inventory = inventory  # booted discovery again: keep the latest report
    if in_step and secret:
        name, token = lookup(db, normal, address=address, inventory=inventory, secret=secret)
        return name, token, False
    return None, None, False


def heartbeat(session: Session, node_name: str, token: str,
              report: dict[str, Any]) -> dict[str, Any] | None:
    """Record a heartbeat and the command's state; return a command the agent should start.

    A report about a command this agent was not handed (unknown id, not handed out yet, or
    already finished with another outcome) is refused with ConflictError and not recorded.
    """
    node = session.scalar(select(m.Node).where(m.Node.name == node_name))
    agent = session.get(AgentSession, node.id) if node is not None else None
    if agent is None or not secrets.compare_digest(agent.token_hash, hash_token(token)):
        raise AuthenticationError(
            "unknown agent or stale token; the agent must look up again (reboot it)"
        )
    agent.heartbeat_at = utcnow()
    command = dict(agent.command or {})
    reported = report.get("command_id")
    if reported is not None:
        if not command or reported != command.get("id") or not command.get("handed_out"):
            raise ConflictError("no command with this id was handed to this agent; the report "
                                "is not recorded")
        if command.get("status") in FINISHED:
            if report.get("status") not in (None, command.get("status")):
                raise ConflictError(f"command {reported} already finished as "
                                    f"{command.get('status')}; the report is not recorded")
        else:
            command.update({key: report[key] for key in REPORTED if key in report})
            agent.command = command
    if command.get("status") == "pending":  # again until the agent reports it running
        if not command.get("handed_out"):
            agent.command = {**command, "handed_out": True}
        return {key: command[key] for key in ("id", "name", "args")}
    return None


def queue_command(session: Session, node_id: str, name: str, args: dict[str, Any]) -> str:
    agent = session.get(AgentSession, node_id)
    if agent is None:
        raise ConflictError("the node's agent has not looked up; it cannot take commands")
    command_id = uuid.uuid4().hex
    agent.command = {"id": command_id, "name": name, "args": args, "status": "pending"}
    return command_id
