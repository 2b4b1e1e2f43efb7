"""CRUD routes for the fleet's named resources, built once from their ResourceKind."""


from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Response
from pydantic import BaseModel
from sqlalchemy import select

from metalfleet import policy
from metalfleet.api.deps import READ, WRITE, Caller, Context, DbSession, require
from metalfleet.core.errors import PermissionDeniedError
from metalfleet.inventory import resources
from metalfleet.inventory.lab_shortcuts import LabGate
from metalfleet.inventory.resources import ResourceKind
from metalfleet.inventory.schemas import Page, Role
from metalfleet.inventory.tokens import Principal


def _check_member(caller: Principal, kind: ResourceKind) -> None:
    """A clear 403 where the policy gives members no rows of the kind at all."""
    if caller.role is Role.MEMBER and not policy.member_reads(kind.model):
        raise PermissionDeniedError(
            f"tenant members cannot read {kind.plural}; ask an operator"
        )


def build_router(kind: ResourceKind) -> APIRouter:
    router = APIRouter(prefix=f"/v1/{kind.plural}", tags=[kind.plural])
    writer = Depends(require(WRITE, f"changing {kind.plural}"))
    reader = require(READ, f"reading {kind.plural}")
    out_schema: Any = kind.out_schema
    create_schema: Any = kind.create_schema
    patch_schema: Any = kind.patch_schema

    @router.get("", response_model=Page[out_schema], summary=f"List {kind.plural}")
    def list_items(
        session: DbSession,
        caller: Annotated[Principal, Depends(reader)],
        limit: int = Query(100, ge=1, le=1000),
        cursor: str | None = None,
        filter_: Annotated[list[str] | None, Query(alias="filter",
                                                   description="field=value")] = None,
    ) -> dict[str, Any]:
        _check_member(caller, kind)
        filters: dict[str, str | None] = {}
        for item in filter_ or []:
            key, _, value = item.partition("=")
            if key not in kind.filters:
                from metalfleet.core.errors import ValidationError

                raise ValidationError(
                    f"cannot filter {kind.plural} by {key!r}; filters: "
                    f"{', '.join(kind.filters) or 'none'}"
                )
            filters[key] = value
        items, next_cursor = resources.list_page(
            session, kind, limit=limit, cursor=cursor, filters=filters,
            scope=policy.scoped(caller),
        )
        return {"items": [resources.to_out(kind, obj) for obj in items], "next": next_cursor}

    @router.post("", response_model=out_schema, status_code=201, dependencies=[writer],
                 summary=f"Create a {kind.singular}")
    def create_item(
        session: DbSession, context: Context, caller: Caller, response: Response,
        body: Annotated[create_schema, Body()]
    ) -> BaseModel:
        obj = resources.create(session, kind, body, lab=LabGate.of(context.lab, caller))
        response.headers["Location"] = f"/v1/{kind.plural}/{obj.name}"
        return resources.to_out(kind, obj)

    @router.get("/{name}", response_model=out_schema, summary=f"Show a {kind.singular}")
    def get_item(
        session: DbSession, name: str, caller: Annotated[Principal, Depends(reader)]
    ) -> BaseModel:
        _check_member(caller, kind)
        model: Any = kind.model
        return resources.to_out(kind, policy.load(
            session, caller, select(model).where(model.name == name),
            resources.missing(kind, name)))

    @router.patch("/{name}", response_model=out_schema, dependencies=[writer],
                  summary=f"Change a {kind.singular}")
    def patch_item(
        session: DbSession, context: Context, caller: Caller, name: str,
        body: Annotated[patch_schema, Body()]
    ) -> BaseModel:
        return resources.to_out(kind, resources.update(
            session, kind, name, body, lab=LabGate.of(context.lab, caller)))

    @router.delete("/{name}", status_code=204, dependencies=[writer],
                   summary=f"Delete a {kind.singular}")
    def delete_item(session: DbSession, name: str) -> Response:
        resources.delete(session, kind, name)
        return Response(status_code=204)

    return router


def all_routers() -> list[APIRouter]:
    return [build_router(kind) for kind in resources.KINDS.values()]


__all__ = ["Caller", "all_routers", "build_router"]
