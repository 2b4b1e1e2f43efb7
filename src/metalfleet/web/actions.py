"""Dashboard actions, through the same service functions and access policy as the API's
routes (metalfleet/policy.py; never the route functions themselves): same checks, same
events."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pydantic
from sqlalchemy.orm import Session

from metalfleet import policy
from metalfleet.core.errors import MetalfleetError
from metalfleet.core.states import Action, NodeState, allowed_actions
from metalfleet.db import models as m
from metalfleet.inventory import node_actions, nodes
from metalfleet.inventory import schemas as s
from metalfleet.inventory.lab_shortcuts import LabGate
from metalfleet.inventory.tokens import Principal
from metalfleet.runtime import AppContext

LABELS = {
    "manage": "Manage (verify BMC)", "inspect": "Inspect", "provide": "Provide (burn-in)",
    "deploy": "Deploy", "undeploy": "Undeploy (release and clean)", "clean": "Clean",
    "validate": "Validate (acceptance tests)",
    "maintenance-on": "Maintenance on", "maintenance-off": "Maintenance off",
    "power-on": "Power on", "power-off": "Power off", "reboot": "Reboot",
    "set-tenant": "Set tenant",
}
BULK_ACTIONS = ("maintenance-on", "maintenance-off", "power-on", "power-off", "reboot",
                "deploy", "undeploy", "manage", "inspect", "provide", "clean", "validate")


@dataclass(frozen=True)
class Outcome:
    node: str
    ok: bool
    message: str


def permitted(caller: Principal, action: str) -> bool:
    """Whether to offer ``action`` on a node the caller can see (``act`` checks again)."""
    return policy.permitted(caller, action, m.Node)


def offered(caller: Principal, node: m.Node) -> list[str]:
    """The buttons to show on a node: its allowed lifecycle actions, maintenance, power."""
    choices = [a.value for a in allowed_actions(NodeState(node.state))]
    choices.append("maintenance-off" if node.maintenance else "maintenance-on")
    choices += ["power-on", "power-off", "reboot"]
    return [action for action in choices if permitted(caller, action)]


def _in_session(context: AppContext, name: str, work: Callable[[Session], str]) -> Outcome:
    """Run ``work`` in its own transaction; domain and input errors become an Outcome."""
    session = context.db.sessions()
    try:
        message = work(session)
        session.commit()
    except MetalfleetError as exc:
        session.rollback()
        return Outcome(name, False, exc.detail)
    except pydantic.ValidationError as exc:
        session.rollback()
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in exc.errors())
        return Outcome(name, False, f"invalid input: {problems}")
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
    return Outcome(name, True, message)


def run(context: AppContext, caller: Principal, name: str, action: str, *,
        image: str = "", reason: str = "") -> Outcome:
    """One action on one node, exactly as POST /v1/nodes/{name}/actions/{action}."""

    def work(session: Session) -> str:
        body = s.ActionIn(image=image or None, reason=reason or None)
        node = node_actions.act(session, caller, name, action, image=body.image,
                                reason=body.reason)
        return f"{LABELS.get(action, action)} accepted; node is {node.state}"

    outcome = _in_session(context, name, work)
    if outcome.ok:
        context.wake_conductor()
    return outcome


def set_tenant(context: AppContext, caller: Principal, name: str, tenant: str) -> Outcome:
    """Allocate a node to a tenant (or free it), exactly as PATCH /v1/nodes/{name}."""

    def work(session: Session) -> str:
        policy.require_role(caller, policy.WRITE, "changing nodes")
        body = s.NodePatch.model_validate({"tenant": tenant or None})
        nodes.update_node(session, name, body, context.cipher, actor=caller.actor,
                          lab=LabGate.of(context.lab, caller))
        return f"tenant set to {tenant}" if tenant else "tenant cleared"

    return _in_session(context, name, work)


def enroll(context: AppContext, caller: Principal, form: dict[str, str]) -> Outcome:
    """Enrol a node from the dashboard's form, exactly as POST /v1/nodes."""
    name = form.get("name", "").strip()

    def work(session: Session) -> str:
        policy.require_role(caller, policy.WRITE, "changing nodes")
        body: dict[str, Any] = {
            "name": name,
            "bmc": {"driver": form.get("bmc_driver") or "redfish",
                    "address": form.get("bmc_address", "").strip(),
                    "username": form.get("bmc_username") or None,
                    "password": form.get("bmc_password") or None,
                    "verify_tls": form.get("bmc_verify_tls") == "on"},
        }
        for key in ("rack", "node_class", "tenant"):
            if form.get(key):
                body[key] = form[key]
        for key in ("u_position", "u_size"):
            if form.get(key, "").strip():
                body[key] = form[key].strip()
        if form.get("pxe_mac", "").strip():
            body["ports"] = [{"name": "pxe0", "mac": form["pxe_mac"].strip(), "pxe": True}]
        nodes.enroll(session, s.NodeIn.model_validate(body), context.cipher,
                     actor=caller.actor, lab=LabGate.of(context.lab, caller))
        return "enrolled; next: Manage (verifies the BMC)"

    return _in_session(context, name or "(no name)", work)


def is_lifecycle(action: str) -> bool:
    return action in {a.value for a in Action}
