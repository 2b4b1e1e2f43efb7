"""What a failed node gets, in order, each step an event: drain, maintenance, ticket, spare.

All of it runs in the caller's transaction (intake.report), so either the whole remediation
is recorded or none of it. A scheduler that cannot be reached does not stop it (hooks.drain
records the failure and returns); neither does a missing spare (the ticket says so).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from metalfleet.core.errors import MetalfleetError
from metalfleet.core.states import Action, NodeState
from metalfleet.db import health_models as hm
from metalfleet.db import models as m
from metalfleet.health import spares, tickets
from metalfleet.health.assessment import Assessment, describe
from metalfleet.inventory import events, lifecycle
from metalfleet.inventory.nodes import set_maintenance
from metalfleet.scheduling import hooks


def request_in_maintenance(session: Session, node: m.Node, action: Action, *, actor: str,
                           image: m.Image | None = None, reason: str | None = None) -> None:
    """Ask for ``action`` on a node the health engine itself holds in maintenance.

    request_action refuses maintenance nodes (it guards operators' holds); the engine's own
    undeploy and validate must pass, so the flag is lifted inside this transaction only."""
    reason_text = node.maintenance_reason
    was_on = node.maintenance
    node.maintenance = False
    session.flush()
    try:
        lifecycle.request_action(session, node, action, actor=actor, image=image,
                                 reason=reason)
    finally:
        node.maintenance = was_on
        node.maintenance_reason = reason_text
        session.flush()


def membership_of(session: Session, node: m.Node) -> m.ClusterNode | None:
    return session.scalar(select(m.ClusterNode).where(m.ClusterNode.node_id == node.id))


def remediate(session: Session, node: m.Node, assessment: Assessment,
              signals: list[hm.HealthSignal], *, actor: str) -> hm.RepairTicket | None:
    """Remediate a failed node; with a ticket already open only its evidence grows."""
    ticket = tickets.open_ticket_of(session, node.id)
    if ticket is not None:
        if tickets.merge_signals(ticket, signals):  # a repeat only refreshes its entry
            events.record(session, node=node, kind="ticket", actor=actor,
                          message=f"repair ticket {ticket.id}: evidence added",
                          data={"ticket": ticket.id})
        return ticket
    cause = assessment.cause
    if cause is None or assessment.remediation == "none":
        return None
    reason = f"health: {describe(cause)}"
    # 1. out of the scheduler
    outcome = hooks.drain(session, node, reason, actor=actor)
    drain_entry = ({"kind": "drain", "scheduler": None, "ok": True,
                    "detail": "in no scheduler's cluster; nothing to drain"} if outcome is None
                   else {"kind": "drain", "scheduler": outcome.scheduler, "ok": outcome.ok,
                         "detail": outcome.detail})
    if outcome is None:
        events.record(session, node=node, kind="remediation", actor=actor,
                      message=f"drain: {drain_entry['detail']}", data=drain_entry)
    # 2. maintenance (an operator's hold already in place is kept, and kept afterwards)
    already = node.maintenance
    if already:
        events.record(session, node=node, kind="remediation", actor=actor,
                      message=f"already in maintenance ({node.maintenance_reason}); kept")
    else:
        set_maintenance(session, node.name, True, reason, actor=actor)
    # 3. the ticket
    membership = membership_of(session, node)
    cluster = membership.cluster.name if membership is not None else None
    summary = f"{describe(cause)}: {cause.message}" if cause.message else describe(cause)
    ticket = tickets.open_ticket(session, node, cause, summary, signals, cluster=cluster,
                                 actor=actor)
    tickets.append(ticket, drain_entry)
    tickets.append(ticket, {"kind": "maintenance", "already_on": already,
                            "reason": node.maintenance_reason})
    # 4. a spare in its place
    if assessment.remediation == "replace" and membership is not None:
        replace(session, node, membership, ticket, actor=actor)
    session.flush()
    return ticket


def replace(session: Session, node: m.Node, membership: m.ClusterNode,
            ticket: hm.RepairTicket, *, actor: str) -> None:
    image = node.image
    was_running = node.state in (NodeState.ACTIVE.value, NodeState.DEPLOYING.value)
    swap = spares.find_and_swap(session, node, membership, actor=actor)
    entry: dict[str, object] = {"kind": "replacement", "spare": None, "detail": swap.detail}
    if swap.spare is None:
        events.record(session, node=node, kind="remediation", actor=actor,
                      message=swap.detail, data={"ticket": ticket.id})
        ticket.summary = f"{ticket.summary}; no spare was free"
        tickets.append(ticket, entry)
        return
    spare = swap.spare
    ticket.replacement_node = spare.name
    entry.update(spare=spare.name, leaf=swap.leaf, rack=swap.rack)
    events.record(session, node=node, kind="remediation", actor=actor, message=swap.detail,
                  data={"ticket": ticket.id, "spare": spare.name})
    if was_running and image is not None:
        lifecycle.request_action(session, spare, Action.DEPLOY, actor=actor, image=image,
                                 reason=f"replaces {node.name} (ticket {ticket.id})")
        entry["deploy"] = image.name
        undeploy(session, node, ticket, actor=actor)
    tickets.append(ticket, entry)


def undeploy(session: Session, node: m.Node, ticket: hm.RepairTicket, *, actor: str) -> bool:
    """Clean the replaced node (it ends available, still in maintenance); False if deferred."""
    try:
        request_in_maintenance(session, node, Action.UNDEPLOY, actor=actor,
                               reason=f"replaced (ticket {ticket.id})")
    except MetalfleetError as exc:
        # Busy (the conductor holds it) or mid-deploy: the health tick retries.
        events.record(session, node=node, kind="remediation", actor=actor,
                      message=f"undeploy deferred: {exc.detail}", data={"ticket": ticket.id})
        return False
    return True
