"""Routes the node agent calls: lookup (MACs and boot secret) and heartbeat (per-boot token).

A lookup with ``discover`` (the discovery ramdisk's) enrolls unknown MACs as a new node
(inventory/discovery.py) and answers without a token.

Agents hold no API token: lookup only succeeds for a node that is in a step expecting its
agent and with the one-time secret its iPXE script put on the kernel command line
(inventory/agent_auth.py); it hands out a per-boot token that every heartbeat must carry
(X-Agent-Token). Lookups (discovery included) are rate-limited per source address across
API processes (inventory/rate_limits.py) and carry at most MAX_MACS MACs.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel, Field

from metalfleet.api.deps import Context, DbSession
from metalfleet.inventory import agents, rate_limits
from metalfleet.inventory.schemas import Strict

router = APIRouter(prefix="/v1/agent", tags=["agent"])


class LookupIn(Strict):
    macs: list[str] = Field(min_length=1, max_length=agents.MAX_MACS)
    boot_secret: str | None = Field(None, max_length=128, description="the one-time "
                                    "metalfleet.boot_secret from the kernel command line")
    inventory: dict[str, Any] = Field(default_factory=dict)
    agent_version: str | None = None
    discover: bool = Field(False, description="sent by the discovery ramdisk: unknown MACs "
                           "become a new node instead of a 404")
    boot_mac: str | None = Field(None, max_length=32,
                                 description="the MAC the machine network-booted from")


class LookupOut(BaseModel):
    node: str | None = Field(description="the node's name: for a proven agent, or a node "
                             "discovered by this lookup; null otherwise")
    token: str | None = Field(description="per-boot token; null when the node has no work "
                              "for its agent (a discovered node): the agent powers off")
    heartbeat_interval_s: float
    discovered: bool = Field(False, description="the node was created by this lookup")


class HeartbeatIn(Strict):
    command_id: str | None = Field(None, max_length=64)
    status: Literal["running", "done", "failed"] | None = None
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
def lookup(context: Context, request: Request, body: LookupIn) -> LookupOut:
    """Transactions are the inventory's own: a refused replay must still commit its mark."""
    address = request.client.host if request.client else None
    rate_limits.hit(context.db, f"lookup:{address or 'unknown'}",
                    limit=context.settings.agent_lookups_per_minute,
                    what="agent lookups and discovery reports")
    created = False
    name: str | None
    token: str | None
    if body.discover:
        name, token, created = agents.discover_lookup(
            context.db, body.macs, address=address, inventory=body.inventory,
            boot_mac=body.boot_mac, secret=body.boot_secret)
    else:
        name, token = agents.lookup(context.db, body.macs, address=address,
                                    inventory=body.inventory, secret=body.boot_secret)
    return LookupOut(node=name, token=token, discovered=created,
                     heartbeat_interval_s=agents.HEARTBEAT_INTERVAL_S)


@router.post("/heartbeat/{node}", response_model=HeartbeatOut)
def heartbeat(session: DbSession, node: str, body: HeartbeatIn,
              x_agent_token: Annotated[str, Header()]) -> HeartbeatOut:
    command = agents.heartbeat(session, node, x_agent_token,
                               body.model_dump(exclude_none=True))
    return HeartbeatOut(command=Command(**command) if command else None,
                        heartbeat_interval_s=agents.HEARTBEAT_INTERVAL_S)
