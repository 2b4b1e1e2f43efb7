"""The health engine: a node's signals decide its health; failing starts remediation.

:func:`evaluate` runs in the reporting transaction (intake). :func:`tick` runs periodically
in every conductor: it expires stale first strikes and walks open tickets towards
re-validation (revalidation.py). Each ticket is handled in a transaction of its own with a
row lock that other conductors skip, and every state change is a conditional UPDATE, so
several conductors never act twice.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from metalfleet.core.errors import MetalfleetError
from metalfleet.db import health_models as hm
from metalfleet.db import models as m
from metalfleet.db.base import utcnow
from metalfleet.db.session import Database, rowcount
from metalfleet.health import remediation, rules, tickets
from metalfleet.health.assessment import assess, describe
from metalfleet.inventory import events

if TYPE_CHECKING:
    from metalfleet.policy import Scope

log = logging.getLogger(__name__)


def node_signals(session: Session, node_id: str, scope: Scope | None = None
                 ) -> list[hm.HealthSignal]:
    """The node's active signals; ``scope`` is a caller's access policy (policy.py)."""
    statement: Select[Any] = select(hm.HealthSignal).where(
        hm.HealthSignal.node_id == node_id, hm.HealthSignal.status == "active")
    if scope is not None:
        statement = scope(statement)
    return list(session.scalars(
        statement.order_by(hm.HealthSignal.first_seen, hm.HealthSignal.check)))


def evaluate(session: Session, node: m.Node, *, actor: str) -> str:
    """Recompute ``node.health`` from its active signals; remediate when it is failed."""
    book = rules.current()
    signals = node_signals(session, node.id)
    assessment = assess(signals, book)
    before = node.health
    if assessment.health != before:
        node.health = assessment.health
        node.updated_at = utcnow()
        listed = [*assessment.critical, *assessment.degraded]
        because = ", ".join(describe(s) for s in listed) or "no active signals"
        events.record(session, node=node, kind="health", actor=actor,
                      message=f"health {before} -> {assessment.health}: {because}",
                      data={"from": before, "to": assessment.health,
                            "evidence": [tickets.signal_entry(s) for s in signals]})
        session.flush()
    if assessment.health == "failed":
        remediation.remediate(session, node, assessment, signals, actor=actor)
    return assessment.health


def expire_first_strikes(session: Session, *, actor: str) -> int:
    """Clear two-strike signals whose single sighting is older than the window."""
    book = rules.current()
    two_strike = [check for check, rule in book.rules.items() if rule.two_strike]
    if not two_strike:
        return 0
    cutoff = utcnow() - timedelta(seconds=book.two_strike_window_s)
    statement = select(hm.HealthSignal).where(
        hm.HealthSignal.status == "active", hm.HealthSignal.strikes == 1,
        hm.HealthSignal.last_seen < cutoff)
    if "*" not in two_strike:
        statement = statement.where(hm.HealthSignal.check.in_(two_strike))
    expired = 0
    for signal in session.scalars(statement).all():
        if not book.rule(signal.check).two_strike:
            continue
        result = session.execute(
            update(hm.HealthSignal)
            .where(hm.HealthSignal.id == signal.id, hm.HealthSignal.status == "active",
                   hm.HealthSignal.strikes == 1)
            .values(status="cleared", cleared_at=utcnow())
            .execution_options(synchronize_session=False))
        if rowcount(result) != 1:
            continue  # seen again, or another conductor expired it
        node = session.get(m.Node, signal.node_id)
        if node is None:
            continue
        events.record(session, node=node, kind="health", actor=actor,
                      message=f"{signal.source} {describe(signal)}: first strike expired "
                      f"(not seen again within {book.two_strike_window_s:g} s)",
                      data={"signal_id": signal.id})
        evaluate(session, node, actor=actor)
        expired += 1
    return expired


def tick(db: Database, *, actor: str = "health-engine") -> None:
    """One pass of the periodic work; errors are logged per item, never raised."""
    from metalfleet.health import revalidation  # revalidation imports this module

    try:
        with db.session() as session:
            expire_first_strikes(session, actor=actor)
    except (SQLAlchemyError, MetalfleetError):
        log.exception("health tick: expiring first strikes failed")
    with db.session() as session:
        open_ids = list(session.scalars(select(hm.RepairTicket.id).where(
            hm.RepairTicket.status == "open", hm.RepairTicket.node_id.is_not(None))))
    for ticket_id in open_ids:
        try:
            with db.session() as session:
                revalidation.advance(session, ticket_id, actor=actor)
        except (SQLAlchemyError, MetalfleetError):
            log.exception("health tick: ticket %s", ticket_id)
