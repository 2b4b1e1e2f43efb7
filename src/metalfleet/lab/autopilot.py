"""The lab's autopilot: walks new lab nodes enrolled -> manageable -> inspected -> available.

It asks for the same actions an operator would, through the lifecycle service, so every
step is checked by the transition table and recorded as an event (actor lab-autopilot).
"""

from __future__ import annotations

from sqlalchemy import select

from metalfleet.core.errors import ConflictError
from metalfleet.core.states import Action, NodeState
from metalfleet.db import models as m
from metalfleet.db.session import Database
from metalfleet.inventory import lifecycle
from metalfleet.lab.fleet import LAB_LABEL

NEXT_ACTION = {
    NodeState.ENROLLED.value: Action.MANAGE,
    NodeState.MANAGEABLE.value: Action.INSPECT,
    NodeState.INSPECTED.value: Action.PROVIDE,
}
ACTOR = "lab-autopilot"


def step(db: Database) -> list[str]:
    """Ask for the next action on every lab node that waits for one; returns their names."""
    moved = []
    with db.session() as session:
        waiting = session.scalars(
            select(m.Node).where(
                m.Node.state.in_(list(NEXT_ACTION)),
                m.Node.reservation.is_(None),
                m.Node.maintenance.is_(False),
                m.Node.labels[LAB_LABEL].as_string() == "true",
            )
        ).all()
        for node in waiting:
            try:
                lifecycle.request_action(session, node, NEXT_ACTION[node.state], actor=ACTOR)
                moved.append(node.name)
            except ConflictError:
                continue  # someone else moved it first; next round sees the new state
    return moved
