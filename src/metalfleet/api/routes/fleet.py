"""The declarative fleet file over HTTP: plan it, or apply it in one transaction."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from metalfleet.api.deps import WRITE, Context, DbSession, require
from metalfleet.inventory import fleetfile
from metalfleet.inventory.fleetfile_schema import FleetIn, PlanOut
from metalfleet.inventory.lab_shortcuts import LabGate
from metalfleet.inventory.tokens import Principal

router = APIRouter(prefix="/v1/fleet", tags=["fleet"])
Writer = Annotated[Principal, Depends(require(WRITE, "planning and applying fleet files"))]
ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"description": "the file has errors: `errors` lists each with its `path`; "
          "nothing was applied"},
}


@router.post("/plan", response_model=PlanOut, responses=ERRORS)
def plan_fleet(session: DbSession, caller: Writer, body: FleetIn) -> PlanOut:
    """What applying the file would create, update and delete; changes nothing. A BMC
    password in the file is never compared with the stored one: its node shows
    ``bmc.password: will be set (not compared)``."""
    return fleetfile.plan(session, body.fleet, prune=body.prune)


@router.post("/apply", response_model=PlanOut, responses=ERRORS)
def apply_fleet(session: DbSession, context: Context, caller: Writer, body: FleetIn) -> PlanOut:
    """Make the fleet match the file, all or nothing, through the usual rules and events."""
    return fleetfile.apply(session, body.fleet, prune=body.prune, cipher=context.cipher,
                           actor=caller.actor, lab=LabGate.of(context.lab, caller))
