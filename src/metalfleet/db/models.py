"""The fleet model: one table per concept. Services in inventory/ and conductor/ use these."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from metalfleet.db.base import Base, IdMixin, utcnow


class Site(IdMixin, Base):
    __tablename__ = "sites"
    name: Mapped[str] = mapped_column(String(63), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    location: Mapped[str] = mapped_column(String(255), default="")


class Rack(IdMixin, Base):
    __tablename__ = "racks"
    name: Mapped[str] = mapped_column(String(63), unique=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"), index=True)
    u_height: Mapped[int] = mapped_column(Integer, default=42)
    power_budget_w: Mapped[int | None] = mapped_column(Integer, default=None)
    row: Mapped[str] = mapped_column(String(63), default="")
    site: Mapped[Site] = relationship(lazy="joined")


class Switch(IdMixin, Base):
    __tablename__ = "switches"
    name: Mapped[str] = mapped_column(String(63), unique=True)
    rack_id: Mapped[str | None] = mapped_column(ForeignKey("racks.id", ondelete="SET NULL"))
    role: Mapped[str] = mapped_column(String(16))  # leaf | spine
    fabric: Mapped[str] = mapped_column(String(16))  # ethernet | infiniband
    model: Mapped[str] = mapped_column(String(127), default="")
    port_count: Mapped[int] = mapped_column(Integer, default=64)
    u_position: Mapped[int | None] = mapped_column(Integer, default=None)
    # How metalfleet reaches the switch to move node ports (network/switch_access.py);
    # "none": not managed, ports stay where they are cabled.
    driver: Mapped[str] = mapped_column(String(32), default="none")
    address: Mapped[str] = mapped_column(String(255), default="")
    username: Mapped[str | None] = mapped_column(String(127), default=None)
    password_encrypted: Mapped[str | None] = mapped_column(Text, default=None)
    driver_info: Mapped[dict[str, Any]] = mapped_column(default=dict)
    rack: Mapped[Rack | None] = relationship(lazy="joined")


class SwitchLink(IdMixin, Base):
    """A cable between two switch ports (leaf uplink to spine, say)."""

    __tablename__ = "switch_links"
    __table_args__ = (UniqueConstraint("switch_id", "port"),)
    name: Mapped[str] = mapped_column(String(127), unique=True)
    switch_id: Mapped[str] = mapped_column(ForeignKey("switches.id", ondelete="CASCADE"))
    port: Mapped[str] = mapped_column(String(32))
    peer_switch_id: Mapped[str] = mapped_column(ForeignKey("switches.id", ondelete="CASCADE"))
    peer_port: Mapped[str] = mapped_column(String(32))
    switch: Mapped[Switch] = relationship(foreign_keys=[switch_id], lazy="joined")
    peer_switch: Mapped[Switch] = relationship(foreign_keys=[peer_switch_id], lazy="joined")


class Network(IdMixin, Base):
    __tablename__ = "networks"
    # Two tenants never share a VLAN, even when two conductors allocate at once.
    __table_args__ = (Index("uq_networks_tenant_vlan", "vlan_id", unique=True,
                            sqlite_where=text("role = 'tenant'"),
                            postgresql_where=text("role = 'tenant'")),)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    site_id: Mapped[str | None] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"))
    role: Mapped[str] = mapped_column(String(16))
    vlan_id: Mapped[int | None] = mapped_column(Integer, default=None)
    cidr: Mapped[str] = mapped_column(String(64))
    gateway: Mapped[str | None] = mapped_column(String(64), default=None)
    dhcp_start: Mapped[str | None] = mapped_column(String(64), default=None)
    dhcp_end: Mapped[str | None] = mapped_column(String(64), default=None)
    mtu: Mapped[int] = mapped_column(Integer, default=1500)
    # role "tenant": the tenant whose nodes this network carries while they are active.
    tenant_id: Mapped[str | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), default=None, index=True)
    site: Mapped[Site | None] = relationship(lazy="joined")
    tenant: Mapped[Tenant | None] = relationship(lazy="joined")


class IpAllocation(IdMixin, Base):
    __tablename__ = "ip_allocations"
    __table_args__ = (UniqueConstraint("network_id", "address"),)
    network_id: Mapped[str] = mapped_column(ForeignKey("networks.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(64))
    node_id: Mapped[str | None] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[str] = mapped_column(String(63), default="")
    network: Mapped[Network] = relationship(lazy="joined")
    node: Mapped[Node | None] = relationship(lazy="joined")


class NodeClass(IdMixin, Base):
    __tablename__ = "node_classes"
    name: Mapped[str] = mapped_column(String(63), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    cpu_sockets: Mapped[int] = mapped_column(Integer, default=2)
    cpu_cores: Mapped[int] = mapped_column(Integer, default=0)
    memory_gib: Mapped[int] = mapped_column(Integer, default=0)
    gpu_model: Mapped[str | None] = mapped_column(String(127), default=None)
    gpu_count: Mapped[int] = mapped_column(Integer, default=0)
    gpu_memory_gib: Mapped[int] = mapped_column(Integer, default=0)
    ib_ports: Mapped[int] = mapped_column(Integer, default=0)
    ib_rate_gbps: Mapped[int] = mapped_column(Integer, default=0)
    disk_gib: Mapped[int] = mapped_column(Integer, default=0)
    power_w: Mapped[int] = mapped_column(Integer, default=0)
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Tenant(IdMixin, Base):
    __tablename__ = "tenants"
    name: Mapped[str] = mapped_column(String(63), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    ssh_keys: Mapped[list[Any]] = mapped_column(default=list)


class Image(IdMixin, Base):
    __tablename__ = "images"
    name: Mapped[str] = mapped_column(String(127), unique=True)
    os: Mapped[str] = mapped_column(String(127), default="")
    kernel_version: Mapped[str | None] = mapped_column(String(63), default=None)
    driver_version: Mapped[str | None] = mapped_column(String(63), default=None)
    cuda_version: Mapped[str | None] = mapped_column(String(63), default=None)
    disk_format: Mapped[str] = mapped_column(String(16), default="raw")
    location: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # The raw conversion of a qcow2 image (the deploy agent writes raw): its checksum and size,
    # and the checksum of the qcow2 file it was made from (a newer upload makes it stale).
    raw_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    raw_size_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    raw_source_sha256: Mapped[str | None] = mapped_column(String(64), default=None)


class Node(IdMixin, Base):
    __tablename__ = "nodes"
    __table_args__ = (
        Index("ix_nodes_state_class_name", "state", "node_class_id", "name"),
        Index("ix_nodes_class_name", "node_class_id", "name"),
        Index("ix_nodes_tenant_name", "tenant_id", "name"),
    )
    name: Mapped[str] = mapped_column(String(63), unique=True)
    rack_id: Mapped[str | None] = mapped_column(
        ForeignKey("racks.id", ondelete="RESTRICT"), index=True
    )
    u_position: Mapped[int | None] = mapped_column(Integer, default=None)
    u_size: Mapped[int] = mapped_column(Integer, default=1)
    node_class_id: Mapped[str | None] = mapped_column(ForeignKey("node_classes.id"))
    bmc_driver: Mapped[str] = mapped_column(String(32))
    bmc_address: Mapped[str] = mapped_column(Text)
    bmc_username: Mapped[str | None] = mapped_column(String(127), default=None)
    bmc_password_encrypted: Mapped[str | None] = mapped_column(Text, default=None)
    bmc_verify_tls: Mapped[bool] = mapped_column(Boolean, default=True)
    bmc_error: Mapped[str | None] = mapped_column(Text, default=None)
    hardware_type: Mapped[str] = mapped_column(String(32))
    driver_info: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(32), default="enrolled")
    power_state: Mapped[str] = mapped_column(String(16), default="unknown")
    # A power change asked for through the API, carried out by a conductor.
    target_power_state: Mapped[str | None] = mapped_column(String(16), default=None)
    health: Mapped[str] = mapped_column(String(16), default="ok")
    maintenance: Mapped[bool] = mapped_column(Boolean, default=False)
    maintenance_reason: Mapped[str | None] = mapped_column(Text, default=None)
    retired: Mapped[bool] = mapped_column(Boolean, default=False)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    progress_percent: Mapped[int | None] = mapped_column(Integer, default=None)
    progress_step: Mapped[str | None] = mapped_column(String(255), default=None)
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"), default=None)
    # When the current tenant got the node (inventory/tenancy.py): its members read the node's
    # events, runs, health and tickets from here on, never a previous tenant's (policy.py).
    tenant_since: Mapped[datetime | None] = mapped_column(default=None)
    image_id: Mapped[str | None] = mapped_column(ForeignKey("images.id"), default=None)
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    inventory: Mapped[dict[str, Any]] = mapped_column(default=dict)
    reservation: Mapped[str | None] = mapped_column(String(255), default=None, index=True)
    reserved_at: Mapped[datetime | None] = mapped_column(default=None)
    state_changed_at: Mapped[datetime] = mapped_column(default=utcnow)

    rack: Mapped[Rack | None] = relationship(lazy="joined")
    node_class: Mapped[NodeClass | None] = relationship(lazy="joined")
    tenant: Mapped[Tenant | None] = relationship(lazy="joined")
    image: Mapped[Image | None] = relationship(lazy="joined")
    ports: Mapped[list[Port]] = relationship(
        back_populates="node", cascade="all, delete-orphan", lazy="selectin",
        order_by="Port.name",
    )


class Port(IdMixin, Base):
    __tablename__ = "ports"
    __table_args__ = (UniqueConstraint("node_id", "name"),)
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(32))
    mac: Mapped[str] = mapped_column(String(17), unique=True)
    network_id: Mapped[str | None] = mapped_column(ForeignKey("networks.id"), default=None)
    switch_id: Mapped[str | None] = mapped_column(ForeignKey("switches.id"), default=None)
    switch_port: Mapped[str | None] = mapped_column(String(32), default=None)
    speed_gbps: Mapped[int | None] = mapped_column(Integer, default=None)
    pxe: Mapped[bool] = mapped_column(Boolean, default=False)
    # The network the switch last confirmed for this port (read back after a move or by the
    # drift sweep); None: never moved by metalfleet, or taken off every network.
    switch_network_id: Mapped[str | None] = mapped_column(
        ForeignKey("networks.id", ondelete="SET NULL"), default=None)
    node: Mapped[Node] = relationship(back_populates="ports")
    switch: Mapped[Switch | None] = relationship(lazy="joined")
    network: Mapped[Network | None] = relationship(lazy="joined", foreign_keys=[network_id])
    switch_network: Mapped[Network | None] = relationship(
        lazy="joined", foreign_keys=[switch_network_id])


class ApiToken(IdMixin, Base):
    __tablename__ = "api_tokens"
    name: Mapped[str] = mapped_column(String(63), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(16))
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    tenant: Mapped[Tenant | None] = relationship(lazy="joined")


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_node_time", "node_id", "id"),)
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    time: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    node_id: Mapped[str | None] = mapped_column(
        ForeignKey("nodes.id", ondelete="SET NULL"), default=None
    )
    node_name: Mapped[str | None] = mapped_column(String(63), default=None)
    kind: Mapped[str] = mapped_column(String(32))  # transition | action | error | info | ...
    actor: Mapped[str] = mapped_column(String(127))
    from_state: Mapped[str | None] = mapped_column(String(32), default=None)
    to_state: Mapped[str | None] = mapped_column(String(32), default=None)
    message: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Conductor(Base):
    """A running conductor process; its heartbeat tells the others it still holds its nodes."""

    __tablename__ = "conductors"
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)


class Cluster(IdMixin, Base):
    """A named allocation of nodes for a tenant, handed to a scheduler (or to none)."""

    __tablename__ = "clusters"
    name: Mapped[str] = mapped_column(String(63), unique=True)
    tenant_id: Mapped[str | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="RESTRICT"), default=None, index=True
    )
    scheduler: Mapped[str] = mapped_column(String(16))  # slurm | kubernetes | none
    node_class_id: Mapped[str] = mapped_column(ForeignKey("node_classes.id", ondelete="RESTRICT"))
    count: Mapped[int] = mapped_column(Integer)
    # {"same_leaf": bool, "spread_racks": bool, "labels": {key: value}}
    constraints: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # How to reach the cluster's scheduler: {"slurm": {"conf", "prefix"}, "kubernetes": {...}}
    scheduler_config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(16), default="ready")
    tenant: Mapped[Tenant | None] = relationship(lazy="joined")
    node_class: Mapped[NodeClass] = relationship(lazy="joined")
    members: Mapped[list[ClusterNode]] = relationship(
        back_populates="cluster", cascade="all, delete-orphan", lazy="selectin",
        order_by="ClusterNode.node_name",
    )


class ClusterNode(Base):
    """Membership: a node belongs to at most one cluster."""

    __tablename__ = "cluster_nodes"
    cluster_id: Mapped[str] = mapped_column(
        ForeignKey("clusters.id", ondelete="CASCADE"), primary_key=True
    )
    node_id: Mapped[str] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True, unique=True
    )
    node_name: Mapped[str] = mapped_column(String(63))
    leaf: Mapped[str | None] = mapped_column(String(63), default=None)  # leaf switch at placement
    rack: Mapped[str | None] = mapped_column(String(63), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    cluster: Mapped[Cluster] = relationship(back_populates="members")
    node: Mapped[Node] = relationship(lazy="joined")


class Quota(IdMixin, Base):
    """How many nodes of a class a tenant may hold in its clusters (no row: no limit)."""

    __tablename__ = "quotas"
    __table_args__ = (UniqueConstraint("tenant_id", "node_class_id"),)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    node_class_id: Mapped[str] = mapped_column(
        ForeignKey("node_classes.id", ondelete="CASCADE")
    )
    max_nodes: Mapped[int] = mapped_column(Integer)
    tenant: Mapped[Tenant] = relationship(lazy="joined")
    node_class: Mapped[NodeClass] = relationship(lazy="joined")
