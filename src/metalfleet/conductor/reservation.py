"""Node reservation in the database: how several conductor processes share one fleet.

A conductor takes a node with a conditional UPDATE (only if nobody holds it), heartbeats while
it lives, and any conductor recovers the nodes of one whose heartbeat stopped.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from metalfleet.core.states import NodeState, is_work_state, outcome_of
from metalfleet.db import models as m
from metalfleet.db.base import utcnow
from metalfleet.db.session import rowcount
from metalfleet.inventory import events


def reserve(session: Session, node_id: str, conductor: str) -> bool:
    """Take the node if it is free; True when this conductor now holds it."""
    result = session.execute(
        update(m.Node)
        .where(m.Node.id == node_id, m.Node.reservation.is_(None))
        .values(reservation=conductor, reserved_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) == 1


def release(session: Session, node_id: str, conductor: str) -> None:
    session.execute(
        update(m.Node)
        .where(m.Node.id == node_id, m.Node.reservation == conductor)
        .values(reservation=None, reserved_at=None)
        .execution_options(synchronize_session=False)
    )


def heartbeat(session: Session, conductor: str) -> None:
    row = session.get(m.Conductor, conductor)
    if row is None:
        session.add(m.Conductor(name=conductor))
    else:
        row.heartbeat_at = utcnow()


def unregister(session: Session, conductor: str) -> None:
    row = session.get(m.Conductor, conductor)
    if row is not None:
        session.delete(row)


def recover_dead(session: Session, *, me: str, dead_after_s: float) -> list[str]:
    """Free nodes held by conductors that stopped heartbeating; fail interrupted work.

    Work that was running when its conductor died is not resumed blindly (a half-written
    disk is not a state to build on): the node lands in the step's failed state with the
    reason, and an operator or the autopilot retries it.
    """
    cutoff = utcnow() - timedelta(seconds=dead_after_s)
    alive = select(m.Conductor.name).where(m.Conductor.heartbeat_at >= cutoff)
    orphans = list(session.scalars(
        select(m.Node).where(
            m.Node.reservation.is_not(None),
            m.Node.reservation != me,
            or_(m.Node.reservation.not_in(alive)),
        )
    ))
    recovered = []
    for node in orphans:
        holder = node.reservation
        state = NodeState(node.state)
        values: dict[str, object] = {"reservation": None, "reserved_at": None}
        if is_work_state(state):
            failed = outcome_of(state, succeeded=False)
            reason = f"conductor {holder} stopped responding during {state.value}"
            values.update(state=failed.value, last_error=reason, state_changed_at=utcnow())
            events.record(session, node=node, kind="error", actor=me, message=reason,
                          from_state=state.value, to_state=failed.value)
        else:
            events.record(session, node=node, kind="info", actor=me,
                          message=f"released reservation of dead conductor {holder}")
        result = session.execute(
            update(m.Node).where(m.Node.id == node.id, m.Node.reservation == holder)
            .values(**values).execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            recovered.append(node.name)
    session.execute(delete(m.Conductor).where(m.Conductor.heartbeat_at < cutoff))
    return recovered
