"""cloud-init NoCloud (nocloud-net) seed: what a freshly deployed node fetches on first boot.

Nodes find the seed URL in their SMBIOS serial (``ds=nocloud-net;s=URL``) or on the kernel
command line; it names the node by MAC, so no token is needed. The first fetch of meta-data
is the node's first-boot callback and is recorded as an event.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from sqlalchemy import select

from metalfleet.api.deps import DbSession
from metalfleet.boot import cloudinit
from metalfleet.core.errors import NotFoundError
from metalfleet.db import models as m
from metalfleet.inventory import events

router = APIRouter(prefix="/v1/nocloud", tags=["boot"])
RENDERERS = {
    "meta-data": cloudinit.meta_data,
    "user-data": cloudinit.user_data,
    "network-config": cloudinit.network_config,
}


@router.get("/{mac}/{item}", response_class=PlainTextResponse)
def seed(session: DbSession, mac: str, item: str) -> str:
    render = RENDERERS.get(item)
    if render is None:
        if item == "vendor-data":
            return ""
        raise NotFoundError(f"no {item!r} in a NoCloud seed; try meta-data or user-data")
    node = session.scalar(select(m.Node).join(m.Port).where(m.Port.mac == mac.lower()))
    if node is None:
        raise NotFoundError(f"no node has a port with MAC {mac}")
    if item == "meta-data":
        events.record(session, node=node, kind="first-boot", actor="cloud-init",
                      message=f"first boot: {node.name} fetched its meta-data while {node.state}")
    return render(node)
