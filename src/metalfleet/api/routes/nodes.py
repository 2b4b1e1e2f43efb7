"""Node routes: enrol, list, show, change, delete, act, and read the node's events."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from metalfleet import policy
from metalfleet.api.deps import READ, WRITE, Caller, Context, DbSession, require
from metalfleet.inventory import events, node_actions, nodes
from metalfleet.inventory import schemas as s
from metalfleet.inventory.lab_shortcuts import LabGate

router = APIRouter(prefix="/v1/nodes", tags=["nodes"])
writer = Depends(require(WRITE, "changing nodes"))
reader = Depends(require(READ, "reading nodes"))


@router.get("", response_model=s.Page[s.NodeOut], dependencies=[reader])
def list_nodes(
    session: DbSession,
    caller: Caller,
    state: str | None = None,
    node_class: Annotated[str | None, Query(alias="class")] = None,
    rack: str | None = None,
    tenant: str | None = None,
    health: str | None = None,
    maintenance: bool | None = None,
    label: Annotated[list[str] | None, Query(description="key=value, repeatable")] = None,
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = None,
) -> dict[str, Any]:
    items, next_cursor = nodes.list_nodes(
        session, limit=limit, cursor=cursor, state=state, node_class=node_class, rack=rack,
        tenant=tenant, health=health, maintenance=maintenance, labels=label,
        scope=policy.scoped(caller),
    )
    return {"items": [policy.emit(caller, nodes.to_out(node)) for node in items],
            "next": next_cursor}


@router.post("", response_model=s.NodeOut, status_code=201, dependencies=[writer])
def enroll_node(
    session: DbSession, context: Context, caller: Caller, body: s.NodeIn, response: Response
) -> s.NodeOut:
    node = nodes.enroll(session, body, context.cipher, actor=caller.actor,
                        lab=LabGate.of(context.lab, caller))
    response.headers["Location"] = f"/v1/nodes/{node.name}"
    return policy.emit(caller, nodes.to_out(node))


@router.get("/{name}", response_model=s.NodeOut, dependencies=[reader])
def show_node(session: DbSession, caller: Caller, name: str) -> s.NodeOut:
    return policy.emit(caller, nodes.to_out(policy.node(session, caller, name)))


@router.patch("/{name}", response_model=s.NodeOut, dependencies=[writer])
def patch_node(
    session: DbSession, context: Context, caller: Caller, name: str, body: s.NodePatch
) -> s.NodeOut:
    node = nodes.update_node(session, name, body, context.cipher, actor=caller.actor,
                             lab=LabGate.of(context.lab, caller))
    return policy.emit(caller, nodes.to_out(node))


@router.delete("/{name}", status_code=204, dependencies=[writer])
def delete_node(session: DbSession, caller: Caller, name: str) -> Response:
    nodes.delete_node(session, name, actor=caller.actor)
    return Response(status_code=204)


@router.post("/{name}/actions/{action}", response_model=s.NodeOut, status_code=202,
             dependencies=[reader])
def node_action(
    session: DbSession, context: Context, caller: Caller, name: str, action: str,
    body: s.ActionIn | None = None,
) -> s.NodeOut:
    body = body or s.ActionIn()
    node = node_actions.act(session, caller, name, action, image=body.image,
                            reason=body.reason)
    session.commit()
    context.wake_conductor()
    return policy.emit(caller, nodes.to_out(node))


@router.get("/{name}/events", response_model=s.Page[s.EventOut], dependencies=[reader])
def node_events(
    session: DbSession, caller: Caller, name: str,
    after: int | None = Query(None, description="the 'next' of the previous page"),
    limit: int = Query(100, ge=1, le=1000),
) -> dict[str, Any]:
    node = policy.node(session, caller, name)
    items, next_cursor = events.list_events(
        session, node_name=node.name, after_id=after, limit=limit,
        scope=policy.scoped(caller))
    return {"items": [s.EventOut.model_validate(e) for e in items], "next": next_cursor}
