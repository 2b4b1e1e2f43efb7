"""How metalfleet reaches a switch to move node ports (network/switch_access.py).

Operators set it; nobody reads the password back (``has_password`` says whether one is
stored). Members never see switches' access at all.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from metalfleet.api.deps import WRITE, Context, DbSession, require
from metalfleet.inventory import resources
from metalfleet.inventory.lab_shortcuts import LabGate
from metalfleet.inventory.schemas import Strict
from metalfleet.inventory.tokens import Principal
from metalfleet.network import switch_access

router = APIRouter(tags=["switches"])
operator = Depends(require(WRITE, "reading or setting how metalfleet reaches a switch"))


class SwitchAccessIn(Strict):
    driver: str = Field(description=f"one of {', '.join(switch_access.DRIVERS)}")
    address: str = Field("", max_length=255, description="SSH host of the switch")
    username: str | None = Field(None, max_length=127)
    password: str | None = Field(None, max_length=1024, description="stored encrypted; "
                                 "omit to keep the stored one")
    driver_info: dict[str, Any] = Field(default_factory=dict)


class SwitchAccessOut(BaseModel):
    switch: str
    driver: str
    address: str
    username: str | None
    has_password: bool
    driver_info: dict[str, Any]


@router.get("/v1/switches/{name}/access", response_model=SwitchAccessOut)
def get_access(session: DbSession, name: str, caller: Principal = operator) -> SwitchAccessOut:
    switch = resources.get(session, resources.KINDS["switches"], name)
    return SwitchAccessOut(**switch_access.access_out(switch))


@router.put("/v1/switches/{name}/access", response_model=SwitchAccessOut)
def set_access(session: DbSession, context: Context, name: str, body: SwitchAccessIn,
               caller: Principal = operator) -> SwitchAccessOut:
    switch = resources.get(session, resources.KINDS["switches"], name)
    switch_access.set_access(
        session, context.cipher, switch, driver=body.driver, address=body.address,
        username=body.username, password=body.password,
        keep_password="password" not in body.model_fields_set,
        driver_info=body.driver_info, lab=LabGate.of(context.lab, caller))
    return SwitchAccessOut(**switch_access.access_out(switch))
