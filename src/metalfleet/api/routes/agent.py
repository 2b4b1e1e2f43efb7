"""Routes the node agent calls: lookup (by MAC) and heartbeat (with its per-boot token).

Agents hold no API token: lookup only succeeds for a node that is in a step expecting its
agent, and hands out a per-boot token that every heartbeat must carry (X-Agent-Token).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel, Field

from metalfleet.api.deps import DbSession
from metalfleet.inventory import agents
from metalfleet.inventory.schemas import Strict

router = APIRouter(prefix="/v1/agent", tags=["agent"])


class LookupIn(Strict):
    macs: list[str] = Field(min_length=1)
    inventory: dict[str, Any] = Field(default_factory=dict)
    agent_version: str | None = None


class LookupOut(BaseModel):
    node: str
    token: str
    heartbeat_interval_s: float


class HeartbeatIn(Strict):
    command_id: str | None = None
    status: str | None = None
    percent: int | None = None
    step: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None


class Command(BaseModel):
    id: str
    name: str
    args: dict[str, Any]


class HeartbeatOut(BaseModel):
    command: Command | None
    heartbeat_interval_s: float


@router.post("/lookup", response_model=LookupOut)
def lookup(session: DbSession, request: Request, body: LookupIn) -> LookupOut:
    address = request.client.host if request.client else None
    node, token = agents.lookup(session, body.macs, address=address, inventory=body.inventory)
    return LookupOut(node=node.name, token=token,
                     heartbeat_interval_s=agents.HEARTBEAT_INTERVAL_S)


@router.post("/heartbeat/{node}", response_model=HeartbeatOut)
def heartbeat(session: DbSession, node: str, body: HeartbeatIn,
              x_agent_token: Annotated[str, Header()]) -> HeartbeatOut:
    command = agents.heartbeat(session, node, x_agent_token,
                               body.model_dump(exclude_none=True))
    return HeartbeatOut(command=Command(**command) if command else None,
                        heartbeat_interval_s=agents.HEARTBEAT_INTERVAL_S)
