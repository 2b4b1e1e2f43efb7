"""One action on one node, for whoever asks: the API's ``POST /v1/nodes/{name}/actions/{a}``
and the dashboard's buttons both call ``act`` (same policy, same checks, same events)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from metalfleet import policy
from metalfleet.core.errors import ValidationError
from metalfleet.core.states import Action
from metalfleet.db import models as m
from metalfleet.inventory import lifecycle, nodes, resources
from metalfleet.inventory.tokens import Principal

LIFECYCLE_ACTIONS = frozenset(a.value for a in Action)
OTHER_ACTIONS = frozenset({"maintenance-on", "maintenance-off", "power-on", "power-off",
                           "reboot"})


def act(session: Session, principal: Principal, name: str, action: str, *,
        image: str | None = None, reason: str | None = None) -> m.Node:
    """Queue ``action`` on the node (the conductor carries it out); the caller commits."""
    if action not in LIFECYCLE_ACTIONS | OTHER_ACTIONS:
        raise ValidationError(
            f"unknown action {action!r}; actions: "
            f"{', '.join(sorted(LIFECYCLE_ACTIONS | OTHER_ACTIONS))}"
        )
    node = policy.node(session, principal, name)
    policy.require(principal, action, node)
    if action in ("maintenance-on", "maintenance-off"):
        return nodes.set_maintenance(session, name, action == "maintenance-on", reason,
                                     actor=principal.actor)
    if action in ("power-on", "power-off", "reboot"):
        return nodes.request_power(session, name, action.removeprefix("power-"),
                                   actor=principal.actor)
    lifecycle.check_allowed(node, Action(action))
    chosen = resources.resolve_ref(session, m.Image, image, "image") if image else None
    return lifecycle.request_action(session, node, Action(action), actor=principal.actor,
                                    image=chosen, reason=reason)
