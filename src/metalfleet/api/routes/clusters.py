"""Cluster routes (allocate, list, show, release, render) and per-tenant quotas."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Response

from metalfleet.api.deps import ADMIN, READ, Caller, DbSession, require
from metalfleet.core.errors import PermissionDeniedError
from metalfleet.inventory.schemas import Page, Role
from metalfleet.inventory.tokens import Principal
from metalfleet.scheduling import allocation, render
from metalfleet.scheduling import schemas as cs
from metalfleet.scheduling.ansible import inventory as ansible_inv

router = APIRouter(tags=["clusters"])
reader = Depends(require(READ, "reading clusters"))
admin = Depends(require(ADMIN, "setting quotas"))


def _tenant_scope(caller: Principal) -> str | None:
    return caller.tenant_id if caller.role is Role.MEMBER else None


@router.get("/v1/clusters", response_model=Page[cs.ClusterOut], dependencies=[reader])
def list_clusters(
    session: DbSession, caller: Caller, limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = None,
) -> dict[str, Any]:
    items, next_cursor = allocation.list_clusters(
        session, tenant_id=_tenant_scope(caller), limit=limit, cursor=cursor)
    return {"items": [allocation.to_out(c) for c in items], "next": next_cursor}


@router.post("/v1/clusters", response_model=cs.ClusterOut, status_code=201,
             dependencies=[reader])
def create_cluster(
    session: DbSession, caller: Caller, body: cs.ClusterIn, response: Response
) -> cs.ClusterOut:
    if caller.role is Role.VIEWER:
        raise PermissionDeniedError(f"token {caller.name!r} (viewer) may not create clusters")
    tenant = None
    if caller.role is Role.MEMBER:
        if body.tenant is not None and body.tenant != caller.tenant_name:
            raise PermissionDeniedError(
                f"token {caller.name!r} belongs to tenant {caller.tenant_name!r}; it cannot "
                f"create clusters for {body.tenant!r}")
        tenant = caller.tenant_name
    cluster = allocation.create_cluster(session, body, actor=caller.actor, tenant_name=tenant)
    response.headers["Location"] = f"/v1/clusters/{cluster.name}"
    return allocation.to_out(cluster)


@router.get("/v1/clusters/{name}", response_model=cs.ClusterOut, dependencies=[reader])
def show_cluster(session: DbSession, caller: Caller, name: str) -> cs.ClusterOut:
    return allocation.to_out(allocation.load_cluster(session, name, _tenant_scope(caller)))


@router.delete("/v1/clusters/{name}", status_code=204, dependencies=[reader])
def delete_cluster(session: DbSession, caller: Caller, name: str) -> Response:
    if caller.role is Role.VIEWER:
        raise PermissionDeniedError(f"token {caller.name!r} (viewer) may not delete clusters")
    cluster = allocation.load_cluster(session, name, _tenant_scope(caller))
    allocation.delete_cluster(session, cluster, actor=caller.actor)
    return Response(status_code=204)


@router.get("/v1/clusters/{name}/files", dependencies=[reader])
def cluster_files(session: DbSession, caller: Caller, name: str) -> dict[str, str]:
    """What the cluster's scheduler needs, as {file name: content}."""
    cluster = allocation.load_cluster(session, name, _tenant_scope(caller))
    with tempfile.TemporaryDirectory() as tmp:
        written = render.render_cluster(session, cluster, Path(tmp))
        return {path.name: path.read_text() for path in written}


@router.get("/v1/ansible/inventory", dependencies=[reader])
def ansible_inventory(session: DbSession, caller: Caller) -> dict[str, Any]:
    """Ansible dynamic inventory (``--list`` JSON): groups by cluster, class, rack, tenant,
    role; host vars from the inventory. Members get their tenant's nodes only."""
    return ansible_inv.build(session, tenant_id=_tenant_scope(caller))


@router.get("/v1/quotas", response_model=list[cs.QuotaOut], dependencies=[reader])
def list_quotas(session: DbSession, caller: Caller) -> list[cs.QuotaOut]:
    return [allocation.quota_out(session, q)
            for q in allocation.list_quotas(session, _tenant_scope(caller))]


@router.put("/v1/quotas/{tenant}/{node_class}", response_model=cs.QuotaOut,
            dependencies=[admin])
def set_quota(session: DbSession, tenant: str, node_class: str,
              body: cs.QuotaIn) -> cs.QuotaOut:
    quota = allocation.set_quota(session, tenant, node_class, body.max_nodes)
    return allocation.quota_out(session, quota)


@router.delete("/v1/quotas/{tenant}/{node_class}", status_code=204, dependencies=[admin])
def delete_quota(session: DbSession, tenant: str, node_class: str) -> Response:
    allocation.delete_quota(session, tenant, node_class)
    return Response(status_code=204)
