"""Moving nodes through the lifecycle in the database.

The rules live in core/states.py; this module applies them with conditional UPDATEs so two
API or conductor processes can never both move a node, and writes an event per transition.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from metalfleet.core.errors import (
    ConflictError,
    InvalidTransitionError,
    NodeBusyError,
    NotFoundError,
    ValidationError,
)
from metalfleet.core.states import (
    Action,
    NodeState,
    allowed_actions,
    outcome_of,
    plan_action,
)
from metalfleet.db import models as m
from metalfleet.db.base import utcnow
from metalfleet.db.session import rowcount
from metalfleet.inventory import events, node_credentials


def load_node(session: Session, name: str) -> m.Node:
    node = session.scalar(select(m.Node).where(m.Node.name == name))
    if node is None:
        raise NotFoundError(f"no node named {name!r}; list nodes with GET /v1/nodes")
    return node


def _illegal(node: m.Node, action: Action) -> InvalidTransitionError:
    state = NodeState(node.state)
    allowed = [a.value for a in allowed_actions(state)]
    hint = (
        f"actions allowed from {state.value}: {', '.join(allowed)}"
        if allowed
        else f"no lifecycle action is allowed while the node is {state.value}; "
        "wait for the conductor to finish"
    )
    return InvalidTransitionError(
        f"cannot {action.value} node {node.name!r}: it is {state.value}; {hint}",
        node=node.name,
        state=state.value,
        allowed_actions=allowed,
    )


def check_allowed(node: m.Node, action: Action) -> NodeState:
    """The state ``action`` moves the node into; raises 409 naming what is allowed instead."""
    target = plan_action(NodeState(node.state), action)
    if target is None:
        raise _illegal(node, action)
    return target


def request_action(
    session: Session,
    node: m.Node,
    action: Action,
    *,
    actor: str,
    image: m.Image | None = None,
    reason: str | None = None,
) -> m.Node:
    """Accept ``action`` on ``node`` or raise; the conductor does the work afterwards."""
    current = NodeState(node.state)
    target = check_allowed(node, action)
    if node.maintenance:
        raise ConflictError(
            f"node {node.name!r} is in maintenance ({node.maintenance_reason or 'no reason'}); "
            "turn maintenance off first",
            node=node.name,
        )
    if node.retired and action in (Action.DEPLOY, Action.PROVIDE):
        raise ConflictError(f"node {node.name!r} is retired; it takes no new work")
    if action is Action.DEPLOY and image is None:
        raise ValidationError(
            'deploy needs an image: send {"image": "<name>"}; list images with GET /v1/images'
        )
    values: dict[str, Any] = {
        "state": target.value,
        "state_changed_at": utcnow(),
        "last_error": None,
        "progress_percent": 0,
        "progress_step": "queued",
        "updated_at": utcnow(),
    }
    if image is not None:
        values["image_id"] = image.id
    result = session.execute(
        update(m.Node)
        .where(m.Node.id == node.id, m.Node.state == current.value, m.Node.reservation.is_(None))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) != 1:
        session.refresh(node)
        if node.reservation is not None:
            raise NodeBusyError(
                f"node {node.name!r} is being worked on by {node.reservation}; retry when "
                "its current step ends",
                node=node.name,
            )
        raise _illegal(node, action)
    if action is Action.UNDEPLOY:  # the tenancy ends: so do the node's monitor credential
        node_credentials.tenancy_ended(session, node, actor=actor)  # and NoCloud seed
    message = f"{action.value} requested" + (f": {reason}" if reason else "")
    if image is not None:
        message += f" (image {image.name})"
    events.record(
        session, node=node, kind="transition", actor=actor, message=message,
        from_state=current.value, to_state=target.value,
        data={"action": action.value, **({"image": image.name} if image else {})},
    )
    session.refresh(node)
    return node


def finish_work(
    session: Session,
    node_id: str,
    *,
    conductor: str,
    succeeded: bool,
    error: str | None = None,
    updates: dict[str, Any] | None = None,
    actor: str | None = None,
) -> m.Node:
    """The conductor's work on a node ended: move it to the outcome and release it."""
    node = session.get(m.Node, node_id, populate_existing=True)
    if node is None:
        raise NotFoundError(f"node {node_id} vanished while {conductor} worked on it")
    before = NodeState(node.state)
    after = outcome_of(before, succeeded)
    values: dict[str, Any] = dict(updates or {})
    values.update(
        state=after.value,
        state_changed_at=utcnow(),
        reservation=None,
        reserved_at=None,
        last_error=None if succeeded else error,
        progress_percent=100 if succeeded else node.progress_percent,
        progress_step="done" if succeeded else f"failed: {node.progress_step or ''}".rstrip(": "),
        updated_at=utcnow(),
    )
    if after is NodeState.AVAILABLE and before is NodeState.CLEANING:
        values["image_id"] = None
    session.execute(
        update(m.Node)
        .where(m.Node.id == node_id, m.Node.reservation == conductor)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    message = f"{before.value} finished" if succeeded else f"{before.value} failed: {error}"
    events.record(
        session, node=node, kind="transition" if succeeded else "error",
        actor=actor or conductor, message=message, from_state=before.value, to_state=after.value,
    )
    session.refresh(node)
    return node
