"""Acceptance tests: a class's plan, and the runs stored per burn-in or re-validation."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import select

from metalfleet import policy
from metalfleet.api.deps import READ, Caller, DbSession, require
from metalfleet.core.errors import NotFoundError
from metalfleet.db import models as m
from metalfleet.db.health_models import AcceptanceRun
from metalfleet.health import acceptance
from metalfleet.inventory import schemas as s

router = APIRouter(tags=["acceptance"])
reader = Depends(require(READ, "reading acceptance tests"))


class StepResult(BaseModel):
    step: str
    status: Literal["pass", "fail", "not-applicable"]
    measured: float | None = None
    unit: str | None = None
    spec: float | None = None
    threshold: float | None = None
    detail: str = ""


class AcceptanceRunOut(s.Out):
    id: str
    node: str = Field(validation_alias="node_name")
    node_class: str | None
    reason: str
    passed: bool | None
    started_at: datetime
    finished_at: datetime | None
    results: list[StepResult]
    plan: dict[str, Any]


class AcceptancePlanOut(BaseModel):
    format: str
    node_class: str | None
    steps: list[dict[str, Any]]
    seconds: float | None = None


@router.get("/v1/nodes/{name}/acceptance-runs", response_model=s.Page[AcceptanceRunOut],
            dependencies=[reader])
def node_runs(
    session: DbSession, caller: Caller, name: str,
    reason: Literal["burn-in", "revalidation"] | None = None,
    limit: int = Query(20, ge=1, le=1000),
    cursor: str | None = Query(None, description="the 'next' of the previous page"),
) -> dict[str, Any]:
    """The node's acceptance runs, newest first."""
    node = policy.node(session, caller, name)
    items, next_cursor = acceptance.list_runs(session, node.id, limit=limit, cursor=cursor,
                                              reason=reason, scope=policy.scoped(caller))
    return {"items": [AcceptanceRunOut.model_validate(run) for run in items],
            "next": next_cursor}


@router.get("/v1/acceptance-runs/{run_id}", response_model=AcceptanceRunOut,
            dependencies=[reader])
def show_run(session: DbSession, caller: Caller, run_id: str) -> AcceptanceRunOut:
    run = policy.load(session, caller,
                      select(AcceptanceRun).where(AcceptanceRun.id == run_id),
                      acceptance.missing_run(run_id))
    return AcceptanceRunOut.model_validate(run)


@router.get("/v1/node-classes/{name}/acceptance-plan", response_model=AcceptancePlanOut,
            dependencies=[reader])
def class_plan(session: DbSession, name: str) -> dict[str, Any]:
    """What a burn-in of this class runs, with each step's spec, fraction and threshold."""
    node_class = session.scalar(select(m.NodeClass).where(m.NodeClass.name == name))
    if node_class is None:
        raise NotFoundError(f"no node class named {name!r}; list them with GET /v1/node-classes")
    return acceptance.plan_for(node_class)
