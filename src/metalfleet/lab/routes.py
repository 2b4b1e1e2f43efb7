"""Lab fault injection over HTTP, registered by the lab plug-in (lab/plugin.py): these routes
exist only in a process started with ``metalfleet up --lab N``. Reads and writes are
operator-only: the lab's faults are the operator's test bench, not a tenant's business."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlalchemy import select

from metalfleet.api.deps import WRITE, Context, DbSession, require
from metalfleet.core.errors import NotFoundError
from metalfleet.db import models as m
from metalfleet.inventory import events
from metalfleet.inventory.tokens import Principal
from metalfleet.lab.faults import KINDS, LabNodeRef
from metalfleet.lab.handle import lab_of

router = APIRouter(prefix="/v1/lab", tags=["lab"])
Writer = Annotated[Principal, Depends(require(WRITE, "injecting and clearing lab faults"))]
Reader = Annotated[Principal, Depends(require(WRITE, "listing lab faults"))]
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "no lab runs in this process, or no such node"},
    422: {"description": "not a lab node, unknown kind, or a component the node lacks"},
}


class FaultIn(BaseModel):
    node: str = Field(description="a lab node, e.g. lab-gpu-01")
    kind: str = Field(description=f"one of {', '.join(KINDS)}")
    component: str | None = Field(
        default=None, description="GPU3 / 3, FAN2, mlx5_1, nvme0n1, mc0; default: the first one")


class FaultOut(BaseModel):
    node: str
    kind: str
    component: str
    injected_at: str


class FaultList(BaseModel):
    items: list[FaultOut]


def _node(session: DbSession, name: str) -> m.Node:
    node = session.scalar(select(m.Node).where(m.Node.name == name))
    if node is None:
        raise NotFoundError(f"no node named {name!r}; list the lab's nodes with "
                            "GET /v1/nodes?label=metalfleet.io/lab=true")
    return node


@router.post("/faults", status_code=201, response_model=FaultOut, responses=ERRORS)
def inject_fault(body: FaultIn, session: DbSession, context: Context,
                 caller: Writer) -> FaultOut:
    """Make the node's synthetic hardware (and BMC) show the fault; detectors find it."""
    lab = lab_of(context.plugins)
    node = _node(session, body.node)
    fault = lab.faults.inject(LabNodeRef.of(node), body.kind, body.component)
    events.record(session, node=node, kind="lab-fault", actor=caller.actor,
                  message=f"lab fault injected: {fault.kind} on {fault.component}",
                  data=fault.to_dict())
    lab.poke(node.name)
    return FaultOut(**fault.to_dict())


@router.get("/faults", response_model=FaultList, responses=ERRORS)
def list_faults(context: Context, caller: Reader, node: str | None = None) -> FaultList:
    """The faults active in the lab (optionally of one node)."""
    lab = lab_of(context.plugins)
    return FaultList(items=[FaultOut(**f.to_dict()) for f in lab.faults.active(node)])


@router.delete("/faults/{name}", response_model=FaultList, responses=ERRORS)
def clear_faults(name: str, session: DbSession, context: Context, caller: Writer) -> FaultList:
    """Repair the node: every fault on it goes; returns the faults that were active."""
    lab = lab_of(context.plugins)
    node = _node(session, name)
    cleared = lab.faults.clear(LabNodeRef.of(node))
    events.record(session, node=node, kind="lab-fault", actor=caller.actor,
                  message="lab faults cleared: " + (", ".join(
                      f"{f.kind} on {f.component}" for f in cleared) or "none were active"),
                  data={"cleared": [f.to_dict() for f in cleared]})
    lab.poke(node.name)
    return FaultList(items=[FaultOut(**f.to_dict()) for f in cleared])
