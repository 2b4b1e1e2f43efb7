from metalfleet.core.states import (
    FAILED_STATES,
    TRANSITIONS,
    WORK_STATES,
    Action,
    NodeState,
    allowed_actions,
    outcome_of,
    plan_action,
)


def test_happy_path_reaches_available_then_active_and_back() -> None:
    state = NodeState.ENROLLED
    for action in (Action.MANAGE, Action.INSPECT, Action.PROVIDE):
        work = plan_action(state, action)
        assert work is not None and work in WORK_STATES
        state = outcome_of(work, succeeded=True)
    assert state is NodeState.AVAILABLE
    deploying = plan_action(state, Action.DEPLOY)
    assert deploying is NodeState.DEPLOYING
    assert outcome_of(deploying, True) is NodeState.ACTIVE
    releasing = plan_action(NodeState.ACTIVE, Action.UNDEPLOY)
    assert releasing is NodeState.RELEASING
    cleaning = outcome_of(releasing, True)
    assert cleaning is NodeState.CLEANING
    assert outcome_of(cleaning, True) is NodeState.AVAILABLE


def test_every_work_state_fails_into_a_failed_state() -> None:
    for state in WORK_STATES:
        assert outcome_of(state, succeeded=False) in FAILED_STATES


def test_illegal_actions_are_refused() -> None:
    assert plan_action(NodeState.ENROLLED, Action.DEPLOY) is None
    assert plan_action(NodeState.ACTIVE, Action.DEPLOY) is None
    assert plan_action(NodeState.DEPLOYING, Action.UNDEPLOY) is None
    assert allowed_actions(NodeState.DEPLOYING) == []
    assert allowed_actions(NodeState.AVAILABLE) == [Action.INSPECT, Action.DEPLOY, Action.VALIDATE]


def test_every_failed_state_has_a_way_out() -> None:
    for state in FAILED_STATES:
        assert allowed_actions(state), f"{state} is a dead end"


def test_transition_targets_are_work_states() -> None:
    assert all(target in WORK_STATES for target in TRANSITIONS.values())
