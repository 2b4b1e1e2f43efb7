"""Clusters: named allocations of nodes for a tenant, with quotas and topology-aware placement.

Creating a cluster picks ``available`` nodes of a class (placement.py decides which), gives
them to the tenant, labels them with the cluster's name and records an event per node.
Deleting it hands them back: the nodes stay where they are in the lifecycle, their tenant
and label are cleared. A conditional UPDATE and the unique membership row make sure two
requests racing for the same nodes cannot both win.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from metalfleet.core.errors import ConflictError, NotFoundError, ValidationError
from metalfleet.core.states import NodeState
from metalfleet.db import models as m
from metalfleet.db.base import utcnow
from metalfleet.db.session import rowcount
from metalfleet.inventory import events, tenancy
from metalfleet.inventory.pagination import paginate, split_page
from metalfleet.scheduling import schemas as cs
from metalfleet.scheduling.kubernetes import metallb
from metalfleet.scheduling.placement import Candidate, PlacementError, place

CLUSTER_LABEL = "metalfleet.io/cluster"

if TYPE_CHECKING:
    from metalfleet.policy import Scope


class QuotaExceededError(ConflictError):
    title = "Quota exceeded"


def _resolve(session: Session, model: Any, name: str, what: str, hint: str) -> Any:
    obj = session.scalar(select(model).where(model.name == name))
    if obj is None:
        raise ValidationError(f"unknown {what} {name!r}; {hint}", field=what)
    return obj


def load_cluster(session: Session, name: str) -> m.Cluster:
    """The cluster, whoever's it is (callers on behalf of a principal use policy.cluster)."""
    cluster = session.scalar(select(m.Cluster).where(m.Cluster.name == name))
    if cluster is None:
        raise NotFoundError(f"no cluster named {name!r}; list them with GET /v1/clusters")
    return cluster


# --- quotas -------------------------------------------------------------------------------


def used_nodes(session: Session, tenant_id: str, node_class_id: str) -> int:
    statement = (
        select(func.count())
        .select_from(m.ClusterNode)
        .join(m.Cluster, m.Cluster.id == m.ClusterNode.cluster_id)
        .where(m.Cluster.tenant_id == tenant_id, m.Cluster.node_class_id == node_class_id)
    )
    return int(session.scalar(statement) or 0)


def set_quota(session: Session, tenant: str, node_class: str, max_nodes: int) -> m.Quota:
    tenant_obj = _resolve(session, m.Tenant, tenant, "tenant", "list them with GET /v1/tenants")
    klass = _resolve(session, m.NodeClass, node_class, "node_class",
                     "list them with GET /v1/node-classes")
    quota = session.scalar(select(m.Quota).where(m.Quota.tenant_id == tenant_obj.id,
                                                 m.Quota.node_class_id == klass.id))
    if quota is None:
        quota = m.Quota(tenant=tenant_obj, node_class=klass, max_nodes=max_nodes)
        session.add(quota)
    quota.max_nodes = max_nodes
    session.flush()
    return quota


def delete_quota(session: Session, tenant: str, node_class: str) -> None:
    quota = session.scalar(
        select(m.Quota).join(m.Tenant, m.Tenant.id == m.Quota.tenant_id)
        .join(m.NodeClass, m.NodeClass.id == m.Quota.node_class_id)
        .where(m.Tenant.name == tenant, m.NodeClass.name == node_class)
    )
    if quota is None:
        raise NotFoundError(f"tenant {tenant!r} has no quota for class {node_class!r}")
    session.delete(quota)
    session.flush()


def list_quotas(session: Session, scope: Scope | None = None) -> list[m.Quota]:
    statement: Select[Any] = select(m.Quota)
    if scope is not None:
        statement = scope(statement)
    quotas = list(session.scalars(statement))
    return sorted(quotas, key=lambda q: (q.tenant.name, q.node_class.name))


def quota_out(session: Session, quota: m.Quota) -> cs.QuotaOut:
    return cs.QuotaOut(tenant=quota.tenant.name, node_class=quota.node_class.name,
                       max_nodes=quota.max_nodes,
                       used=used_nodes(session, quota.tenant_id, quota.node_class_id))


def lock_tenant(session: Session, tenant: m.Tenant) -> None:
    """Serialize allocations for one tenant until this transaction ends.

    A no-op UPDATE of the tenant's row: PostgreSQL holds that row's lock until commit, SQLite
    takes its database write lock (the driver begins the transaction at the first write), so
    a second concurrent allocation for the tenant waits here and then counts what the first
    one committed. Without it both would count the same "used" and both pass the quota."""
    session.execute(update(m.Tenant).where(m.Tenant.id == tenant.id)
                    .values(name=m.Tenant.name).execution_options(synchronize_session=False))


def _check_quota(session: Session, tenant: m.Tenant, klass: m.NodeClass, count: int,
                 default: int | None) -> None:
    """Refuse an allocation past the tenant's quota for the class: its quota row, else
    ``default`` (settings.default_quota_nodes; None: no limit). Call after lock_tenant."""
    quota = session.scalar(select(m.Quota).where(m.Quota.tenant_id == tenant.id,
                                                 m.Quota.node_class_id == klass.id))
    limit = quota.max_nodes if quota is not None else default
    if limit is None:
        return
    source = "quota" if quota is not None else "default quota (no quota row for the class)"
    used = used_nodes(session, tenant.id, klass.id)
    if used + count > limit:
        raise QuotaExceededError(
            f"tenant {tenant.name!r} may hold {limit} {klass.name} nodes ({source}) and holds "
            f"{used}; {count} more would exceed it (at most {max(limit - used, 0)} more): ask "
            "for fewer, delete a cluster, or ask an admin to set the tenant's quota",
            quota=limit, used=used, requested=count,
        )


# --- candidates -----------------------------------------------------------------------------


def free_nodes_query(klass: m.NodeClass, tenant: m.Tenant | None) -> Select[Any]:
    """Nodes that may join a cluster: available, healthy, idle, in no cluster, not another's."""
    in_cluster = select(m.ClusterNode.node_id)
    statement = select(m.Node).where(
        m.Node.node_class_id == klass.id,
        m.Node.state == NodeState.AVAILABLE.value,
        m.Node.maintenance.is_(False),
        m.Node.retired.is_(False),
        m.Node.health != "failed",
        m.Node.reservation.is_(None),
        m.Node.id.not_in(in_cluster),
    )
    if tenant is None:
        return statement.where(m.Node.tenant_id.is_(None))
    return statement.where(or_(m.Node.tenant_id.is_(None), m.Node.tenant_id == tenant.id))


def leaf_switches(session: Session, node_ids: Select[Any]) -> dict[str, str]:
    """node id -> its leaf switch: the switch of an InfiniBand port, else of an Ethernet one."""
    rows = session.execute(
        select(m.Port.node_id, m.Switch.name, m.Switch.fabric)
        .join(m.Switch, m.Switch.id == m.Port.switch_id)
        .where(m.Port.node_id.in_(node_ids))
        .order_by(m.Port.node_id, m.Port.name)
    )
    leaves: dict[str, str] = {}
    ib: set[str] = set()
    for node_id, switch, fabric in rows:
        if fabric == "infiniband" and node_id not in ib:
            leaves[node_id] = switch
            ib.add(node_id)
        elif node_id not in leaves:
            leaves[node_id] = switch
    return leaves


def candidates(
    session: Session, klass: m.NodeClass, tenant: m.Tenant | None, labels: dict[str, str]
) -> tuple[list[Candidate], dict[str, str]]:
    """Free nodes matching ``labels`` as placement candidates, and their ids by name.

    Only the columns placement needs are read: a 10,000-node pool stays cheap."""
    statement = free_nodes_query(klass, tenant)
    rows = session.execute(
        statement.with_only_columns(m.Node.id, m.Node.name, m.Rack.name, m.Node.labels)
        .outerjoin(m.Rack, m.Rack.id == m.Node.rack_id)
    )
    ids: dict[str, str] = {}
    racks: dict[str, str | None] = {}
    for node_id, name, rack, node_labels in rows:
        if all((node_labels or {}).get(k) == v for k, v in labels.items()):
            ids[name] = node_id
            racks[name] = rack
    leaves = leaf_switches(session, statement.with_only_columns(m.Node.id))
    found = [Candidate(name, racks[name], leaves.get(node_id))
             for name, node_id in sorted(ids.items())]
    return found, ids


# --- clusters -------------------------------------------------------------------------------


def create_cluster(
    session: Session, data: cs.ClusterIn, *, actor: str, tenant_name: str | None = None,
    default_quota: int | None = None,
) -> m.Cluster:
    """Allocate the nodes and record the cluster; ``tenant_name`` overrides ``data.tenant``.

    Quota check and allocation happen in the caller's one transaction, under the tenant's
    lock (lock_tenant): concurrent creates for a tenant cannot together exceed its quota."""
    if session.scalar(select(m.Cluster.id).where(m.Cluster.name == data.name)) is not None:
        raise ConflictError(f"a cluster named {data.name!r} already exists; pick another name")
    klass: m.NodeClass = _resolve(session, m.NodeClass, data.node_class, "node_class",
                                  "list the classes with GET /v1/node-classes")
    tenant_name = tenant_name or data.tenant
    tenant: m.Tenant | None = (
        _resolve(session, m.Tenant, tenant_name, "tenant", "list them with GET /v1/tenants")
        if tenant_name else None
    )
    if tenant is not None:
        lock_tenant(session, tenant)
        _check_quota(session, tenant, klass, data.count, default_quota)
    constraints = data.constraints
    found, ids = candidates(session, klass, tenant, constraints.labels)
    try:
        placement = place(found, data.count, same_leaf=constraints.same_leaf,
                          spread_racks=constraints.spread_racks)
    except PlacementError as exc:
        where = f" with labels {constraints.labels}" if constraints.labels else ""
        raise PlacementError(
            f"cluster {data.name!r} needs {data.count} {klass.name} nodes{where}: "
            f"{exc.detail}; {len(found)} free now",
            **{**exc.extra, "free": len(found)},
        ) from None
    picked = {node.name: node for node in session.scalars(
        select(m.Node).where(m.Node.id.in_([ids[c.name] for c in placement.nodes]))).unique()}
    chosen = [picked[c.name] for c in placement.nodes]
    _take(session, chosen, tenant)
    cluster = m.Cluster(name=data.name, tenant=tenant, scheduler=data.scheduler.value,
                        node_class=klass, count=data.count,
                        constraints=constraints.model_dump(mode="json"), state="ready")
    session.add(cluster)
    for candidate, node in zip(placement.nodes, chosen, strict=True):
        cluster.members.append(m.ClusterNode(node=node, node_id=node.id, node_name=node.name,
                                             leaf=candidate.leaf, rack=candidate.rack))
        node.labels = {**(node.labels or {}), CLUSTER_LABEL: data.name}
        events.record(session, node=node, kind="allocation", actor=actor,
                      message=f"allocated to cluster {data.name}"
                      + (f" of tenant {tenant.name}" if tenant else ""),
                      data={"cluster": data.name, "leaf": candidate.leaf,
                            "rack": candidate.rack})
    events.record(session, node=None, kind="allocation", actor=actor,
                  message=f"cluster {data.name} created: {data.count} {klass.name} nodes on "
                  f"{len(placement.leaves)} leaf switches, {len(placement.racks)} racks",
                  data={"cluster": data.name, "nodes": placement.names})
    try:
        session.flush()
    except IntegrityError as exc:
        raise ConflictError(
            f"another request took some of these nodes while cluster {data.name!r} was being "
            "placed; retry"
        ) from exc
    return cluster


def _take(session: Session, nodes: list[m.Node], tenant: m.Tenant | None) -> None:
    ids = [node.id for node in nodes]
    guard = [
        m.Node.id.in_(ids),
        m.Node.state == NodeState.AVAILABLE.value,
        m.Node.reservation.is_(None),
    ]
    tenant_id = tenant.id if tenant else None
    guard.append(m.Node.tenant_id.is_(None) if tenant_id is None
                 else or_(m.Node.tenant_id.is_(None), m.Node.tenant_id == tenant_id))
    result = session.execute(
        update(m.Node).where(*guard).values(tenant_id=tenant_id, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) != len(ids):
        raise ConflictError("some chosen nodes changed state while the cluster was being "
                            "placed; retry")
    for node in nodes:  # its in-memory tenant is the one before the UPDATE
        tenancy.hand_to(node, tenant)


def delete_cluster(session: Session, cluster: m.Cluster, *, actor: str) -> None:
    for member in cluster.members:
        node = member.node
        if node.tenant_id == cluster.tenant_id:
            tenancy.hand_to(node, None)
        labels = dict(node.labels or {})
        if labels.get(CLUSTER_LABEL) == cluster.name:
            del labels[CLUSTER_LABEL]
            node.labels = labels
        node.updated_at = utcnow()
        events.record(session, node=node, kind="allocation", actor=actor,
                      message=f"released from cluster {cluster.name}",
                      data={"cluster": cluster.name})
    metallb.reserve(session, cluster.name, None, 0)
    events.record(session, node=None, kind="allocation", actor=actor,
                  message=f"cluster {cluster.name} deleted", data={"cluster": cluster.name})
    session.delete(cluster)
    session.flush()


def list_clusters(
    session: Session, *, scope: Scope | None = None, limit: int = 100,
    cursor: str | None = None,
) -> tuple[list[m.Cluster], str | None]:
    """Clusters by name; ``scope`` is the caller's access policy (metalfleet/policy.py)."""
    statement: Select[Any] = select(m.Cluster)
    if scope is not None:
        statement = scope(statement)
    rows = list(session.scalars(paginate(statement, m.Cluster.name, limit, cursor)).unique())
    return split_page(rows, limit, lambda c: c.name)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: objects merge key by key, null removes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def configure(session: Session, cluster: m.Cluster, patch: dict[str, Any], *,
              actor: str) -> None:
    """Merge ``patch`` into how metalfleet reaches the cluster's scheduler (validated, one
    event). Merging lets a client change one setting without sending back secrets it was only
    shown redacted."""
    merged = merge_patch(cluster.scheduler_config or {}, patch)
    try:
        config = cs.SchedulerConfig.model_validate(merged)
    except PydanticValidationError as exc:
        errors = [{"field": ".".join(str(p) for p in ("scheduler_config", *err["loc"])),
                   "message": err["msg"]} for err in exc.errors()]
        raise ValidationError(
            "scheduler_config is not valid: "
            + "; ".join(f"{e['field']}: {e['message']}" for e in errors), errors=errors,
        ) from None
    for kind in ("slurm", "kubernetes"):
        if getattr(config, kind) is not None and cluster.scheduler != kind:
            raise ValidationError(
                f"cluster {cluster.name!r} runs {cluster.scheduler!r}, so scheduler_config."
                f"{kind} does not apply; set scheduler_config.{cluster.scheduler} instead"
                if cluster.scheduler != "none" else
                f"cluster {cluster.name!r} has no scheduler; there is nothing to configure",
                field=f"scheduler_config.{kind}")
    kube = config.kubernetes
    network = kube.service_network if kube else None
    if network is not None:
        _resolve(session, m.Network, network, "scheduler_config.kubernetes.service_network",
                 "list the networks with GET /v1/networks")
    metallb.reserve(session, cluster.name, network, kube.service_addresses if kube else 0)
    cluster.scheduler_config = config.model_dump(mode="json", exclude_none=True)
    events.record(session, node=None, kind="allocation", actor=actor,
                  message=f"cluster {cluster.name}: scheduler settings changed",
                  data={"cluster": cluster.name})
    session.flush()


_SECRET_FLAGS = ("--token", "--password", "--client-key-data")


def redact(config: dict[str, Any]) -> dict[str, Any]:
    """scheduler_config for output: argv values after secret flags become '***'."""
    def argv(items: list[str]) -> list[str]:
        out: list[str] = []
        for item in items:
            flag = item.split("=", 1)[0]
            if out and out[-1] in _SECRET_FLAGS:
                out.append("***")
            elif "=" in item and flag in _SECRET_FLAGS:
                out.append(f"{flag}=***")
            else:
                out.append(item)
        return out

    result = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
    for key, field in (("kubernetes", "kubectl"), ("slurm", "prefix")):
        section = result.get(key)
        if isinstance(section, dict) and isinstance(section.get(field), list):
            section[field] = argv(section[field])
    return result


def cluster_nodes(cluster: m.Cluster) -> list[m.Node]:
    return [member.node for member in cluster.members]


def to_out(cluster: m.Cluster) -> cs.ClusterOut:
    members = cluster.members
    return cs.ClusterOut(
        id=cluster.id,
        name=cluster.name,
        tenant=cluster.tenant.name if cluster.tenant else None,
        scheduler=cluster.scheduler,
        node_class=cluster.node_class.name,
        count=cluster.count,
        constraints=cs.Constraints.model_validate(cluster.constraints or {}),
        state=cluster.state,
        leaves=sorted({mb.leaf for mb in members if mb.leaf}),
        racks=sorted({mb.rack for mb in members if mb.rack}),
        nodes=[cs.ClusterNodeOut(name=mb.node_name, rack=mb.rack, leaf=mb.leaf,
                                 state=mb.node.state) for mb in members],
        scheduler_config=redact(cluster.scheduler_config or {}),
        created_at=cluster.created_at,
    )
