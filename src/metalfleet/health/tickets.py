"""Repair tickets: one open ticket per node, its evidence a timeline of what happened.

Evidence entries are dicts with a ``kind``: ``signal`` (one per signal, updated in place as
it is seen again), ``drain``, ``maintenance``, ``replacement``, ``repair`` (an operator's
note), ``validate-requested`` and ``revalidation`` (an acceptance run's outcome).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from metalfleet.core.errors import NotFoundError, ValidationError
from metalfleet.db import health_models as hm
from metalfleet.db import models as m
from metalfleet.db.base import as_utc, utcnow
from metalfleet.db.session import rowcount
from metalfleet.health.assessment import SignalLike
from metalfleet.inventory import events
from metalfleet.inventory.pagination import paginate, split_page

TICKET_STATUSES = ("open", "resolved")

if TYPE_CHECKING:
    from metalfleet.policy import Scope


def stamp(when: datetime | None = None) -> str:
    return (when or utcnow()).isoformat()


def parse_stamp(value: Any) -> datetime | None:
    try:
        return as_utc(datetime.fromisoformat(str(value)))
    except ValueError:
        return None


def signal_entry(signal: hm.HealthSignal) -> dict[str, Any]:
    return {"kind": "signal", "signal_id": signal.id, "source": signal.source,
            "check": signal.check, "component": signal.component,
            "severity": signal.severity, "message": signal.message,
            "evidence": signal.evidence, "strikes": signal.strikes,
            "first_seen": stamp(as_utc(signal.first_seen)),
            "last_seen": stamp(as_utc(signal.last_seen))}


def open_ticket_of(session: Session, node_id: str, scope: Scope | None = None
                   ) -> hm.RepairTicket | None:
    statement: Select[Any] = select(hm.RepairTicket).where(
        hm.RepairTicket.node_id == node_id, hm.RepairTicket.status == "open")
    if scope is not None:
        statement = scope(statement)
    ticket: hm.RepairTicket | None = session.scalar(
        statement.order_by(hm.RepairTicket.opened_at.desc()).limit(1))
    return ticket


def append(ticket: hm.RepairTicket, entry: dict[str, Any]) -> None:
    """Add an entry (a fresh list, so the JSON column sees the change)."""
    ticket.evidence = [*(ticket.evidence or []), {"at": stamp(), **entry}]
    ticket.updated_at = utcnow()


def merge_signals(ticket: hm.RepairTicket, signals: list[hm.HealthSignal]) -> int:
    """Add new signals to the evidence, refresh the ones already there (strikes, last seen);
    how many were new."""
    evidence = list(ticket.evidence or [])
    index = {e.get("signal_id"): i for i, e in enumerate(evidence) if e.get("kind") == "signal"}
    added = 0
    changed = False
    for signal in signals:
        entry = signal_entry(signal)
        i = index.get(signal.id)
        if i is None:
            evidence.append({"at": stamp(), **entry})
            added += 1
        elif any(evidence[i].get(k) != entry[k] for k in ("strikes", "last_seen", "severity")):
            evidence[i] = {**evidence[i], **entry}
            changed = True
    if added or changed:
        ticket.evidence = evidence
        ticket.updated_at = utcnow()
    return added


def open_ticket(session: Session, node: m.Node, cause: SignalLike, summary: str,
                signals: list[hm.HealthSignal], *, cluster: str | None, actor: str
                ) -> hm.RepairTicket:
    ticket = hm.RepairTicket(node_id=node.id, node_name=node.name, component=cause.component,
                             summary=summary, cluster_name=cluster, evidence=[],
                             opened_at=utcnow())
    merge_signals(ticket, signals)
    session.add(ticket)
    session.flush()
    events.record(session, node=node, kind="ticket", actor=actor,
                  message=f"repair ticket {ticket.id} opened: {summary}",
                  data={"ticket": ticket.id, "component": cause.component})
    return ticket


def last_time(ticket: hm.RepairTicket, kind: str) -> datetime | None:
    times = [parse_stamp(e.get("at")) for e in ticket.evidence or [] if e.get("kind") == kind]
    found = [t for t in times if t is not None]
    return max(found) if found else None


def repaired_since(ticket: hm.RepairTicket) -> datetime:
    """Since when a re-validation counts: the ticket's opening, the last repair note, or the
    last new signal (a run from before a new fault proves nothing about it)."""
    times = [as_utc(ticket.opened_at), last_time(ticket, "repair"), last_time(ticket, "signal")]
    return max(t for t in times if t is not None)


def mark_resolved(session: Session, ticket: hm.RepairTicket, resolution: str) -> bool:
    """Resolve if still open (a conditional UPDATE: of two conductors, one wins)."""
    session.flush()  # the refresh below must not drop evidence appended in this transaction
    now = utcnow()
    result = session.execute(
        update(hm.RepairTicket)
        .where(hm.RepairTicket.id == ticket.id, hm.RepairTicket.status == "open")
        .values(status="resolved", resolution=resolution, resolved_at=now, updated_at=now)
        .execution_options(synchronize_session=False))
    if rowcount(result) != 1:
        return False
    session.refresh(ticket)
    return True


def missing_ticket(ticket_id: str) -> str:
    return f"no repair ticket {ticket_id!r}; list them with GET /v1/repair-tickets"


def load_ticket(session: Session, ticket_id: str) -> hm.RepairTicket:
    ticket = session.get(hm.RepairTicket, ticket_id)
    if ticket is None:
        raise NotFoundError(missing_ticket(ticket_id))
    return ticket


def list_tickets(session: Session, *, status: str | None = None, node: str | None = None,
                 limit: int = 100, cursor: str | None = None, scope: Scope | None = None,
                 ) -> tuple[list[hm.RepairTicket], str | None]:
    """Tickets by id; ``scope`` is the caller's access policy (metalfleet/policy.py)."""
    statement: Select[Any] = select(hm.RepairTicket)
    if scope is not None:
        statement = scope(statement)
    if status is not None:
        if status not in TICKET_STATUSES:
            raise ValidationError(f"status must be one of {', '.join(TICKET_STATUSES)}",
                                  field="status")
        statement = statement.where(hm.RepairTicket.status == status)
    if node is not None:
        statement = statement.where(hm.RepairTicket.node_name == node)
    rows = list(session.scalars(paginate(statement, hm.RepairTicket.id, limit, cursor)))
    return split_page(rows, limit, lambda t: t.id)
