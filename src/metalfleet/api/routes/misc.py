"""Small routes: health, IPAM allocations, tokens and the fleet-wide event log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy import text

from metalfleet import policy
from metalfleet.api.deps import ADMIN, READ, WRITE, Caller, Context, DbSession, require
from metalfleet.db import models as m
from metalfleet.inventory import events, ipam, resources, tokens
from metalfleet.inventory import schemas as s

router = APIRouter()


@router.get("/healthz", tags=["health"])
def healthz(context: Context) -> dict[str, Any]:
    with context.db.session() as session:
        session.execute(text("SELECT 1"))
    return {"status": "ok", "database": "sqlite" if context.db.is_sqlite else "postgresql"}


def _allocation_out(allocation: m.IpAllocation) -> s.AllocationOut:
    return s.AllocationOut(
        id=allocation.id, network=allocation.network.name, address=allocation.address,
        node=allocation.node.name if allocation.node else None, purpose=allocation.purpose,
        created_at=allocation.created_at,
    )


@router.get("/v1/networks/{name}/allocations", tags=["networks"],
            response_model=s.Page[s.AllocationOut],
            dependencies=[Depends(require(WRITE | {s.Role.VIEWER}, "reading IPAM"))])
def list_allocations(session: DbSession, name: str) -> dict[str, Any]:
    return {"items": [_allocation_out(a) for a in ipam.list_allocations(session, name)],
            "next": None}


@router.post("/v1/networks/{name}/allocations", tags=["networks"], status_code=201,
             response_model=s.AllocationOut,
             dependencies=[Depends(require(WRITE, "allocating addresses"))])
def allocate(session: DbSession, name: str, body: s.AllocationIn) -> s.AllocationOut:
    allocation = ipam.allocate(session, name, address=body.address, node_name=body.node,
                               purpose=body.purpose)
    return _allocation_out(allocation)


@router.delete("/v1/networks/{name}/allocations/{address}", tags=["networks"], status_code=204,
               dependencies=[Depends(require(WRITE, "releasing addresses"))])
def release(session: DbSession, name: str, address: str) -> Response:
    ipam.release(session, name, address)
    return Response(status_code=204)


@router.get("/v1/tokens", tags=["tokens"], response_model=s.Page[s.TokenOut],
            dependencies=[Depends(require(ADMIN, "managing tokens"))])
def list_tokens(session: DbSession) -> dict[str, Any]:
    from sqlalchemy import select

    rows = session.scalars(select(m.ApiToken).order_by(m.ApiToken.name))
    return {"items": [tokens.token_out(t) for t in rows], "next": None}


@router.post("/v1/tokens", tags=["tokens"], status_code=201, response_model=s.TokenCreated,
             dependencies=[Depends(require(ADMIN, "managing tokens"))])
def create_token(session: DbSession, body: s.TokenIn) -> s.TokenCreated:
    token, secret = tokens.create_token(session, body)
    return s.TokenCreated(**tokens.token_out(token).model_dump(), token=secret)


@router.delete("/v1/tokens/{name}", tags=["tokens"], status_code=204,
               dependencies=[Depends(require(ADMIN, "managing tokens"))])
def delete_token(session: DbSession, caller: Caller, name: str) -> Response:
    from sqlalchemy import select

    token = session.scalar(select(m.ApiToken).where(m.ApiToken.name == name))
    if token is None:
        from metalfleet.core.errors import NotFoundError

        raise NotFoundError(f"no token named {name!r}")
    session.delete(token)
    return Response(status_code=204)


@router.get("/v1/events", tags=["events"], response_model=s.Page[s.EventOut],
            dependencies=[Depends(require(READ, "reading events"))])
def list_events(
    session: DbSession, caller: Caller,
    node: str | None = None,
    kind: str | None = Query(None, description="one kind or several: alert,bmc-log,health"),
    since: datetime | None = None, until: datetime | None = None,
    q: str | None = Query(None, description="text to search in messages"),
    order: str = Query("asc", pattern="^(asc|desc)$", description="desc: newest first"),
    after: int | None = None, limit: int = Query(100, ge=1, le=1000),
) -> dict[str, Any]:
    """The event log; a member gets its nodes' events from its current tenancy only."""
    items, next_cursor = events.list_events(
        session, node_name=node, kind=kind, since=since, until=until, text=q, after_id=after,
        limit=limit, newest_first=order == "desc", scope=policy.scoped(caller),
    )
    return {"items": [s.EventOut.model_validate(e) for e in items], "next": next_cursor}


__all__ = ["resources", "router"]
