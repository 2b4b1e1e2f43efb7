"""Cluster routes (allocate, list, show, release, render) and per-tenant quotas."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Response

from metalfleet import policy
from metalfleet.api.deps import ADMIN, READ, WRITE, Caller, Context, DbSession, require
from metalfleet.core.errors import (
    MetalfleetError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from metalfleet.db import models as m
from metalfleet.inventory.schemas import Page, Role
from metalfleet.scheduling import allocation, hooks, powersave, push, render
from metalfleet.scheduling import schemas as cs
from metalfleet.scheduling.ansible import inventory as ansible_inv

router = APIRouter(tags=["clusters"])
reader = Depends(require(READ, "reading clusters"))
admin = Depends(require(ADMIN, "setting quotas"))
configurer = Depends(require(ADMIN, "configuring how to reach a cluster's scheduler"))
pusher = Depends(require(WRITE, "pushing scheduler files"))


class SchedulerUnreachableError(MetalfleetError):
    status = 502
    title = "Scheduler did not do it"


@router.get("/v1/clusters", response_model=Page[cs.ClusterOut], dependencies=[reader])
def list_clusters(
    session: DbSession, caller: Caller, limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = None,
) -> dict[str, Any]:
    items, next_cursor = allocation.list_clusters(
        session, scope=policy.scoped(caller), limit=limit, cursor=cursor)
    return {"items": [policy.emit(caller, allocation.to_out(c)) for c in items],
            "next": next_cursor}


@router.post("/v1/clusters", response_model=cs.ClusterOut, status_code=201,
             dependencies=[reader])
def create_cluster(
    session: DbSession, context: Context, caller: Caller, body: cs.ClusterIn,
    response: Response,
) -> cs.ClusterOut:
    policy.require(caller, "create", m.Cluster)
    tenant = None
    if caller.role is Role.MEMBER:
        if body.tenant is not None and body.tenant != caller.tenant_name:
            raise PermissionDeniedError(
                f"token {caller.name!r} belongs to tenant {caller.tenant_name!r}; it cannot "
                f"create clusters for {body.tenant!r}")
        tenant = caller.tenant_name
    cluster = allocation.create_cluster(session, body, actor=caller.actor, tenant_name=tenant,
                                        default_quota=context.settings.default_quota_nodes)
    response.headers["Location"] = f"/v1/clusters/{cluster.name}"
    return policy.emit(caller, allocation.to_out(cluster))


@router.get("/v1/clusters/{name}", response_model=cs.ClusterOut, dependencies=[reader])
def show_cluster(session: DbSession, caller: Caller, name: str) -> cs.ClusterOut:
    return policy.emit(caller, allocation.to_out(policy.cluster(session, caller, name)))


@router.delete("/v1/clusters/{name}", status_code=204, dependencies=[reader])
def delete_cluster(session: DbSession, caller: Caller, name: str) -> Response:
    cluster = policy.cluster(session, caller, name)
    policy.require(caller, "delete", cluster)
    allocation.delete_cluster(session, cluster, actor=caller.actor)
    return Response(status_code=204)


@router.patch("/v1/clusters/{name}", response_model=cs.ClusterOut, dependencies=[configurer])
def configure_cluster(session: DbSession, caller: Caller, name: str,
                      body: cs.ClusterPatch) -> cs.ClusterOut:
    """Set how metalfleet reaches the cluster's scheduler (replaces scheduler_config)."""
    cluster = allocation.load_cluster(session, name)
    allocation.configure(session, cluster, body.scheduler_config, actor=caller.actor)
    return policy.emit(caller, allocation.to_out(cluster))


@router.post("/v1/clusters/{name}/push", response_model=cs.PushOut, dependencies=[pusher])
def push_cluster(session: DbSession, name: str) -> cs.PushOut:
    """Write the scheduler's files where it reads them and make it reload them."""
    return push.push(session, allocation.load_cluster(session, name))


def _hook(session: DbSession, caller: Caller, name: str, node_name: str,
          action: str, reason: str | None) -> cs.HookOut:
    cluster = policy.cluster(session, caller, name)
    policy.require(caller, action, cluster)
    member = next((mb for mb in cluster.members if mb.node_name == node_name), None)
    if member is None:
        raise NotFoundError(f"node {node_name!r} is not in cluster {name!r}; see its nodes "
                            f"with GET /v1/clusters/{name}")
    if cluster.scheduler == "none":
        raise ValidationError(f"cluster {name!r} has no scheduler (scheduler 'none'); there "
                              f"is nothing to {action} the node in")
    outcome = (hooks.drain(session, member.node, reason or "", actor=caller.actor)
               if action == "drain" else hooks.resume(session, member.node, actor=caller.actor))
    assert outcome is not None  # the node is in a scheduler's cluster
    if not outcome.ok:
        session.commit()  # keep the event that records the failed attempt
        raise SchedulerUnreachableError(outcome.detail, scheduler=outcome.scheduler)
    return cs.HookOut(node=node_name, scheduler=outcome.scheduler, action=action, ok=True,
                      detail=outcome.detail)


@router.post("/v1/clusters/{name}/nodes/{node}/drain", response_model=cs.HookOut,
             dependencies=[reader])
def drain_node(session: DbSession, caller: Caller, name: str, node: str,
               body: cs.DrainIn) -> cs.HookOut:
    """Stop the scheduler from starting work on the node, with the reason."""
    return _hook(session, caller, name, node, "drain", body.reason)


@router.post("/v1/clusters/{name}/nodes/{node}/resume", response_model=cs.HookOut,
             dependencies=[reader])
def resume_node(session: DbSession, caller: Caller, name: str, node: str) -> cs.HookOut:
    """Give the node back to the scheduler."""
    return _hook(session, caller, name, node, "resume", None)


@router.post("/v1/clusters/{name}/power", response_model=cs.PowerOut, status_code=202,
             dependencies=[reader])
def power(session: DbSession, caller: Caller, name: str, body: cs.PowerIn) -> cs.PowerOut:
    """Slurm power saving: suspend (power off) or resume (power on) a host list of the
    cluster's nodes through their BMC; poll the nodes' power_state for the outcome."""
    cluster = policy.cluster(session, caller, name)
    policy.require(caller, "power", cluster)
    return powersave.request(session, cluster, body, actor=caller.actor)


@router.get("/v1/clusters/{name}/files", dependencies=[reader])
def cluster_files(session: DbSession, caller: Caller, name: str) -> dict[str, str]:
    """What the cluster's scheduler needs, as {file name: content}."""
    cluster = policy.cluster(session, caller, name)
    with tempfile.TemporaryDirectory() as tmp:
        written = render.render_cluster(session, cluster, Path(tmp))
        return {path.name: path.read_text() for path in written}


@router.get("/v1/ansible/inventory", dependencies=[reader])
def ansible_inventory(session: DbSession, caller: Caller) -> dict[str, Any]:
    """Ansible dynamic inventory (``--list`` JSON): groups by cluster, class, rack, tenant,
    role; host vars from the inventory. Members get their tenant's nodes only."""
    return ansible_inv.build(session, scope=policy.scoped(caller))


@router.get("/v1/quotas", response_model=list[cs.QuotaOut], dependencies=[reader])
def list_quotas(session: DbSession, caller: Caller) -> list[cs.QuotaOut]:
    return [allocation.quota_out(session, q)
            for q in allocation.list_quotas(session, policy.scoped(caller))]


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
