"""Routes the node agent calls: lookup (by MAC) and heartbeat (with its per-boot token).

A lookup with ``discover`` (the discovery ramdisk's) enrolls unknown MACs as a new node
(inventory/discovery.py) and answers without a token.

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
    discover: bool = Field(False, description="sent by the discovery ramdisk: unknown MACs "
                           "become a new node instead of a 404")
    boot_mac: str | None = Field(None, description="the MAC the machine network-booted from")


class LookupOut(BaseModel):
    node: str
    token: str | None = Field(description="per-boot token; null when the node has no work "
                              "for its agent (a discovered node): the agent powers off")
    heartbeat_interval_s: float
    discovered: bool = Field(False, description="the node was created by this lookup")


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
    created = False
    token: str | None
    if body.discover:
        node, token, created = agents.discover_lookup(
            session, body.macs, address=address, inventory=body.inventory,
            boot_mac=body.boot_mac)
    else:
        node, token = agents.lookup(session, body.macs, address=address,
                                    inventory=body.inventory)
    return LookupOut(node=node.name, token=token, discovered=created,
                     heartbeat_interval_s=agents.HEARTBEAT_INTERVAL_S)


@router.post("/heartbeat/{node}", response_model=HeartbeatOut)
def heartbeat(session: DbSession, node: str, body: HeartbeatIn,
              x_agent_token: Annotated[str, Header()]) -> HeartbeatOut:
    command = agents.heartbeat(session, node, x_agent_token,
                               body.model_dump(exclude_none=True))
    return HeartbeatOut(command=Command(**command) if command else None,
                        heartbeat_interval_s=agents.HEARTBEAT_INTERVAL_S)
