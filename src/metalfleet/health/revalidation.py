"""Never stuck unhealthy: an open ticket whose signals cleared walks back to service.

Per open ticket, once the node has no active signals and no conductor works on it:

1. replaced but still deployed -> undeploy (it is cleaned, ends available in maintenance);
2. not replaced and not idle (active with its tenant's work, say: no spare was free, or it
   is in no cluster) -> returned as it is: validate would take the deployment;
3. available or burnin-failed, no validate asked since the last repair -> request validate;
4. the re-validation finished -> passed: maintenance off, ticket resolved naming the run,
   resumed in its scheduler; failed: the run joins the evidence, the ticket waits for a
   repair (an operator's resolve note starts the next re-validation).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from metalfleet.core.errors import ConflictError
from metalfleet.core.states import Action, NodeState, is_work_state
from metalfleet.db import health_models as hm
from metalfleet.db import models as m
from metalfleet.health import engine, intake, remediation, tickets
from metalfleet.health.findings import Finding
from metalfleet.inventory import events
from metalfleet.inventory.lifecycle import load_node
from metalfleet.inventory.nodes import set_maintenance
from metalfleet.scheduling import hooks

OPERATOR_CHECK = "operator-repair"


def latest_revalidation(session: Session, node_id: str, since: datetime
                        ) -> hm.AcceptanceRun | None:
    return session.scalar(select(hm.AcceptanceRun).where(
        hm.AcceptanceRun.node_id == node_id, hm.AcceptanceRun.reason == "revalidation",
        hm.AcceptanceRun.finished_at.is_not(None), hm.AcceptanceRun.finished_at >= since,
    ).order_by(hm.AcceptanceRun.finished_at.desc()).limit(1))


def _recorded(ticket: hm.RepairTicket, after: datetime) -> bool:
    last = tickets.last_time(ticket, "revalidation")
    return last is not None and last >= after


def advance(session: Session, ticket_id: str, *, actor: str) -> None:
    ticket = session.scalar(
        select(hm.RepairTicket)
        .where(hm.RepairTicket.id == ticket_id, hm.RepairTicket.status == "open")
        .with_for_update(skip_locked=True))
    if ticket is None or ticket.node_id is None:
        return
    node = session.get(m.Node, ticket.node_id)
    if node is None or engine.node_signals(session, node.id):
        return
    if node.reservation is not None or is_work_state(NodeState(node.state)):
        return
    replaced = ticket.replacement_node is not None
    if replaced and node.state in (NodeState.ACTIVE, NodeState.DEPLOY_FAILED):
        remediation.undeploy(session, node, ticket, actor=actor)
        return
    if replaced and node.state not in (NodeState.AVAILABLE, NodeState.BURNIN_FAILED):
        return  # clean-failed, say: the ticket stays open for an operator
    if node.state not in (NodeState.AVAILABLE, NodeState.BURNIN_FAILED):
        # Not replaced and not idle (say active, its tenant's work on it): validate would
        # take the deployment, so the node goes back as it is.
        membership = remediation.membership_of(session, node)
        where = f" in cluster {membership.cluster.name}" if membership else ""
        resolve(session, ticket, node, actor=actor, resolution=(
            f"signals cleared; {node.name} is {node.state}{where} and nothing replaced it, "
            "so it was returned without an acceptance run (validate needs an idle node)"))
        return
    since = tickets.repaired_since(ticket)
    requested = tickets.last_time(ticket, "validate-requested")
    if requested is None or requested < since:
        remediation.request_in_maintenance(
            session, node, Action.VALIDATE, actor=actor,
            reason=f"re-validation for repair ticket {ticket.id}")
        tickets.append(ticket, {"kind": "validate-requested"})
        return
    run = latest_revalidation(session, node.id, since)
    if run is not None and run.passed:
        resolve(session, ticket, node, actor=actor,
                resolution=f"re-validated: acceptance run {run.id} passed")
    elif run is not None:
        if not _recorded(ticket, requested):
            failed = [r.get("step") for r in run.results or [] if r.get("status") == "fail"]
            tickets.append(ticket, {"kind": "revalidation", "run": run.id, "passed": False,
                                    "failed_steps": failed, "results": run.results})
            events.record(session, node=node, kind="ticket", actor=actor,
                          message=f"re-validation failed (run {run.id}: "
                          f"{', '.join(map(str, failed)) or 'see the run'}); ticket "
                          f"{ticket.id} stays open until the node is repaired",
                          data={"ticket": ticket.id, "run": run.id})
    elif node.state == NodeState.AVAILABLE:
        # The validate flow ended well without recording an acceptance run.
        resolve(session, ticket, node, actor=actor,
                resolution="re-validated: the validate flow passed (no acceptance run "
                "recorded)")
    elif node.state == NodeState.BURNIN_FAILED and not _recorded(ticket, requested):
        tickets.append(ticket, {"kind": "revalidation", "run": None, "passed": False,
                                "detail": node.last_error})
        events.record(session, node=node, kind="ticket", actor=actor,
                      message=f"re-validation failed: {node.last_error}; ticket {ticket.id} "
                      "stays open until the node is repaired", data={"ticket": ticket.id})


def resolve(session: Session, ticket: hm.RepairTicket, node: m.Node, *, actor: str,
            resolution: str) -> bool:
    """Close the ticket and give the node back (maintenance off unless an operator held it)."""
    if not tickets.mark_resolved(session, ticket, resolution):
        return False
    events.record(session, node=node, kind="ticket", actor=actor,
                  message=f"repair ticket {ticket.id} resolved: {resolution}",
                  data={"ticket": ticket.id})
    held = any(e.get("kind") == "maintenance" and e.get("already_on")
               for e in ticket.evidence or [])
    if node.maintenance and not held:
        set_maintenance(session, node.name, False, None, actor=actor)
    engine.evaluate(session, node, actor=actor)
    hooks.resume(session, node, actor=actor)
    session.flush()
    return True


# --- operator paths -----------------------------------------------------------------------


def open_by_operator(session: Session, node_name: str, component: str, summary: str, *,
                     actor: str) -> hm.RepairTicket:
    """Open a ticket by hand: an operator signal that drains and holds the node."""
    node = load_node(session, node_name)
    existing = tickets.open_ticket_of(session, node.id)
    if existing is not None:
        raise ConflictError(f"node {node_name!r} already has open repair ticket "
                            f"{existing.id}; add to it or resolve it first",
                            ticket=existing.id)
    intake.report(session, node, "operator",
                  [Finding(OPERATOR_CHECK, component, "critical", summary,
                           {"opened_by": actor})], actor=actor)
    ticket = tickets.open_ticket_of(session, node.id)
    if ticket is None:
        raise ConflictError(f"the rule for {OPERATOR_CHECK!r} opens no ticket; set its "
                            "remediation to maintenance or replace in health_rules")
    return ticket


def resolve_by_operator(session: Session, ticket_id: str, note: str, *, actor: str
                        ) -> hm.RepairTicket:
    """The node was repaired: clear its signals and start re-validation.

    Every active signal is cleared, not only the operator's: a replaced node is no longer
    deployed, so its agent cannot clear them; a source that still sees the fault reports it
    again, and the acceptance run is the proof either way. The ticket resolves when the
    re-validation passes."""
    ticket = tickets.load_ticket(session, ticket_id)
    if ticket.status != "open":
        raise ConflictError(f"repair ticket {ticket_id} is already {ticket.status}")
    node = session.get(m.Node, ticket.node_id) if ticket.node_id else None
    tickets.append(ticket, {"kind": "repair", "note": note, "actor": actor})
    if node is None:
        tickets.mark_resolved(session, ticket, f"node deleted; {note}")
        return ticket
    events.record(session, node=node, kind="ticket", actor=actor,
                  message=f"repair ticket {ticket.id}: repaired ({note}); re-validating",
                  data={"ticket": ticket.id})
    intake.clear_all(session, node, actor=actor, why=f"cleared: repaired ({note})")
    session.flush()
    advance(session, ticket.id, actor=actor)
    session.flush()
    return ticket
