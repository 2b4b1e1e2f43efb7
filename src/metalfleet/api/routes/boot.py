"""Network boot: the iPXE script a node asks for by MAC (no token: nodes have none)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse
from sqlalchemy import select

from metalfleet.api.deps import DbSession
from metalfleet.boot.ipxe import node_script
from metalfleet.db import models as m
from metalfleet.inventory import events

router = APIRouter(prefix="/v1/boot", tags=["boot"])


@router.get("/ipxe", response_class=PlainTextResponse)
def ipxe_script(session: DbSession, request: Request,
                mac: str = Query(description="the booting NIC's MAC")) -> str:
    node = session.scalar(select(m.Node).join(m.Port).where(m.Port.mac == mac.lower()))
    if node is not None:
        events.record(session, node=node, kind="boot", actor="ipxe",
                      message=f"network boot from {mac.lower()} while {node.state}")
    return node_script(base_url=str(request.base_url), node=node.name if node else None,
                       state=node.state if node else None)
