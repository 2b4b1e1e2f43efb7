"""The node lifecycle: every state, every action and the one transition table.

Nothing else in metalfleet decides whether a node may move. API requests, the conductor,
the lab autopilot and the fleet file all go through :func:`plan_action` and
:func:`outcome_of`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class NodeState(StrEnum):
    ENROLLED = "enrolled"
    VERIFYING = "verifying"
    MANAGEABLE = "manageable"
    INSPECTING = "inspecting"
    INSPECTED = "inspected"
    BURNING_IN = "burning-in"
    AVAILABLE = "available"
    DEPLOYING = "deploying"
    ACTIVE = "active"
    RELEASING = "releasing"
    CLEANING = "cleaning"
    VERIFY_FAILED = "verify-failed"
    INSPECT_FAILED = "inspect-failed"
    BURNIN_FAILED = "burnin-failed"
    DEPLOY_FAILED = "deploy-failed"
    CLEAN_FAILED = "clean-failed"


class Action(StrEnum):
    """Lifecycle actions a user (or the autopilot) can ask for."""

    MANAGE = "manage"
    INSPECT = "inspect"
    PROVIDE = "provide"
    DEPLOY = "deploy"
    UNDEPLOY = "undeploy"
    CLEAN = "clean"
    VALIDATE = "validate"  # re-run the class's acceptance plan on an idle node


class PowerState(StrEnum):
    ON = "on"
    OFF = "off"
    UNKNOWN = "unknown"


class Health(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    FAILED = "failed"


S = NodeState

# (from state, action) -> the state the node enters when the action is accepted.
TRANSITIONS: dict[tuple[NodeState, Action], NodeState] = {
    (S.ENROLLED, Action.MANAGE): S.VERIFYING,
    (S.VERIFY_FAILED, Action.MANAGE): S.VERIFYING,
    (S.MANAGEABLE, Action.INSPECT): S.INSPECTING,
    (S.INSPECTED, Action.INSPECT): S.INSPECTING,
    (S.INSPECT_FAILED, Action.INSPECT): S.INSPECTING,
    (S.AVAILABLE, Action.INSPECT): S.INSPECTING,
    (S.INSPECTED, Action.PROVIDE): S.BURNING_IN,
    (S.BURNIN_FAILED, Action.PROVIDE): S.BURNING_IN,
    (S.AVAILABLE, Action.DEPLOY): S.DEPLOYING,
    (S.DEPLOY_FAILED, Action.DEPLOY): S.DEPLOYING,
    (S.ACTIVE, Action.UNDEPLOY): S.RELEASING,
    (S.DEPLOY_FAILED, Action.UNDEPLOY): S.RELEASING,
    (S.CLEAN_FAILED, Action.CLEAN): S.CLEANING,
    (S.MANAGEABLE, Action.CLEAN): S.CLEANING,
    (S.AVAILABLE, Action.VALIDATE): S.BURNING_IN,
    (S.BURNIN_FAILED, Action.VALIDATE): S.BURNING_IN,
}


@dataclass(frozen=True)
class WorkState:
    """A state in which a conductor is doing something; where it lands afterwards."""

    on_success: NodeState
    on_failure: NodeState


# States the conductor works on. Releasing flows straight into cleaning.
WORK_STATES: dict[NodeState, WorkState] = {
    S.VERIFYING: WorkState(S.MANAGEABLE, S.VERIFY_FAILED),
    S.INSPECTING: WorkState(S.INSPECTED, S.INSPECT_FAILED),
    S.BURNING_IN: WorkState(S.AVAILABLE, S.BURNIN_FAILED),
    S.DEPLOYING: WorkState(S.ACTIVE, S.DEPLOY_FAILED),
    S.RELEASING: WorkState(S.CLEANING, S.CLEAN_FAILED),
    S.CLEANING: WorkState(S.AVAILABLE, S.CLEAN_FAILED),
}

FAILED_STATES = frozenset(
    {S.VERIFY_FAILED, S.INSPECT_FAILED, S.BURNIN_FAILED, S.DEPLOY_FAILED, S.CLEAN_FAILED}
)

# States in which a node may be deleted from the fleet: nothing runs on it, no tenant owns it.
DELETABLE_STATES = frozenset(
    {S.ENROLLED, S.MANAGEABLE, S.INSPECTED, S.AVAILABLE, S.VERIFY_FAILED, S.INSPECT_FAILED,
     S.BURNIN_FAILED, S.CLEAN_FAILED}
)


def allowed_actions(state: NodeState) -> list[Action]:
    """The lifecycle actions accepted from ``state``, in a stable order."""
    return [action for action in Action if (state, action) in TRANSITIONS]


def plan_action(state: NodeState, action: Action) -> NodeState | None:
    """The state a node in ``state`` enters on ``action``; None if the table forbids it."""
    return TRANSITIONS.get((state, action))


def outcome_of(state: NodeState, succeeded: bool) -> NodeState:
    """Where a node lands when the conductor's work in ``state`` ends."""
    work = WORK_STATES[state]
    return work.on_success if succeeded else work.on_failure


def is_work_state(state: NodeState) -> bool:
    return state in WORK_STATES
