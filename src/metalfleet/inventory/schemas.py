"""Shapes of every resource as the API and the fleet file see them (Pydantic).

Inputs forbid unknown fields so a typo is an error, never silently dropped. References to
other resources are by name.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from metalfleet.core import bounds, safe_text

NAME_PATTERN = r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$"
Name = Annotated[
    str,
    Field(pattern=NAME_PATTERN, description="lower-case letters, digits, '.', '_' and '-'"),
]
MAC_RE = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --- sites, racks, switches -------------------------------------------------------------


class SiteIn(Strict):
    name: Name
    description: str = ""
    location: str = ""


class SitePatch(Strict):
    description: str | None = None
    location: str | None = None


class SiteOut(Out):
    id: str
    name: str
    description: str
    location: str
    created_at: datetime
    updated_at: datetime


class RackIn(Strict):
    name: Name
    site: Name
    u_height: int = Field(42, ge=1, le=60)
    power_budget_w: int | None = Field(None, ge=0)
    row: str = ""


class RackPatch(Strict):
    u_height: int | None = Field(None, ge=1, le=60)
    power_budget_w: int | None = Field(None, ge=0)
    row: str | None = None


class RackOut(Out):
    id: str
    name: str
    site: str
    u_height: int
    power_budget_w: int | None
    row: str
    created_at: datetime
    updated_at: datetime


class SwitchRole(StrEnum):
    LEAF = "leaf"
    SPINE = "spine"


class Fabric(StrEnum):
    ETHERNET = "ethernet"
    INFINIBAND = "infiniband"


class SwitchIn(Strict):
    name: Name
    rack: Name | None = None
    role: SwitchRole
    fabric: Fabric
    model: str = ""
    port_count: int = Field(64, ge=1, le=1024)
    u_position: int | None = Field(None, ge=1)


class SwitchPatch(Strict):
    rack: Name | None = None
    model: str | None = None
    port_count: int | None = Field(None, ge=1, le=1024)
    u_position: int | None = Field(None, ge=1)


class SwitchOut(Out):
    id: str
    name: str
    rack: str | None
    role: str
    fabric: str
    model: str
    port_count: int
    u_position: int | None
    created_at: datetime
    updated_at: datetime


class SwitchLinkIn(Strict):
    name: Name
    switch: Name
    port: str = Field(min_length=1, max_length=32)
    peer_switch: Name
    peer_port: str = Field(min_length=1, max_length=32)


class SwitchLinkPatch(Strict):
    port: str | None = Field(None, min_length=1, max_length=32)
    peer_port: str | None = Field(None, min_length=1, max_length=32)


class SwitchLinkOut(Out):
    id: str
    name: str
    switch: str
    port: str
    peer_switch: str
    peer_port: str
    created_at: datetime
    updated_at: datetime


# --- networks and IPAM ------------------------------------------------------------------


class NetworkRole(StrEnum):
    BMC = "bmc"
    PROVISIONING = "provisioning"
    MANAGEMENT = "management"
    STORAGE = "storage"
    DATA = "data"
    IB = "ib"
    TENANT = "tenant"  # a tenant's own layer 2: its active nodes' ports (network/segments.py)
    QUARANTINE = "quarantine"  # failed or suspect nodes: reaches nothing


class NetworkFields(Strict):
    gateway: str | None = None
    dhcp_start: str | None = None
    dhcp_end: str | None = None


class NetworkIn(NetworkFields):
    name: Name
    site: Name | None = None
    role: NetworkRole
    vlan_id: int | None = Field(None, ge=1, le=4094)
    cidr: str
    mtu: int = Field(1500, ge=576, le=65520)
    tenant: Name | None = Field(None, description="role tenant: whose network this is")

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_network(value, strict=True))
        except ValueError as exc:
            raise ValueError(
                f"{value!r} is not a network in CIDR form with no host bits, e.g. 10.0.0.0/24"
            ) from exc

    @model_validator(mode="after")
    def _inside(self) -> NetworkIn:
        check_addresses_inside(self.cidr, self.gateway, self.dhcp_start, self.dhcp_end)
        if (self.tenant is not None) != (self.role is NetworkRole.TENANT):
            raise ValueError("a network names a tenant exactly when its role is 'tenant'")
        return self


def check_addresses_inside(
    cidr: str, gateway: str | None, dhcp_start: str | None, dhcp_end: str | None
) -> None:
    network = ipaddress.ip_network(cidr)
    for label, value in (("gateway", gateway), ("dhcp_start", dhcp_start),
                         ("dhcp_end", dhcp_end)):
        if value is None:
            continue
        try:
            address = ipaddress.ip_address(value)
        except ValueError as exc:
            raise ValueError(f"{label} {value!r} is not an IP address") from exc
        if address not in network:
            raise ValueError(f"{label} {value} is outside the network {cidr}")
    if (dhcp_start is None) != (dhcp_end is None):
        raise ValueError("give both dhcp_start and dhcp_end, or neither")
    if dhcp_start and dhcp_end and int(ipaddress.ip_address(dhcp_start)) > int(
        ipaddress.ip_address(dhcp_end)
    ):
        raise ValueError(f"dhcp_start {dhcp_start} is after dhcp_end {dhcp_end}")


class NetworkPatch(NetworkFields):
    vlan_id: int | None = Field(None, ge=1, le=4094)
    mtu: int | None = Field(None, ge=576, le=65520)


class NetworkOut(Out):
    id: str
    name: str
    site: str | None
    role: str
    vlan_id: int | None
    cidr: str
    gateway: str | None
    dhcp_start: str | None
    dhcp_end: str | None
    mtu: int
    tenant: str | None = None
    created_at: datetime
    updated_at: datetime


class AllocationIn(Strict):
    address: str | None = Field(None, description="a specific address; the next free if omitted")
    node: Name | None = None
    purpose: str = ""


class AllocationOut(Out):
    id: str
    network: str
    address: str
    node: str | None
    purpose: str
    created_at: datetime


# --- node classes, tenants, images ------------------------------------------------------


class NodeClassIn(Strict):
    name: Name
    description: str = ""
    cpu_sockets: int = Field(2, ge=1, le=16)
    cpu_cores: int = Field(0, ge=0)
    memory_gib: int = Field(0, ge=0)
    gpu_model: str | None = None
    gpu_count: int = Field(0, ge=0, le=64)
    gpu_memory_gib: int = Field(0, ge=0)
    ib_ports: int = Field(0, ge=0, le=64)
    ib_rate_gbps: int = Field(0, ge=0)
    disk_gib: int = Field(0, ge=0)
    power_w: int = Field(0, ge=0)
    extra: dict[str, Any] = Field(default_factory=dict)


class NodeClassPatch(Strict):
    description: str | None = None
    cpu_sockets: int | None = Field(None, ge=1, le=16)
    cpu_cores: int | None = Field(None, ge=0)
    memory_gib: int | None = Field(None, ge=0)
    gpu_model: str | None = None
    gpu_count: int | None = Field(None, ge=0, le=64)
    gpu_memory_gib: int | None = Field(None, ge=0)
    ib_ports: int | None = Field(None, ge=0, le=64)
    ib_rate_gbps: int | None = Field(None, ge=0)
    disk_gib: int | None = Field(None, ge=0)
    power_w: int | None = Field(None, ge=0)
    extra: dict[str, Any] | None = None


class NodeClassOut(NodeClassIn, Out):
    model_config = ConfigDict(from_attributes=True, extra="ignore")
    id: str
    created_at: datetime
    updated_at: datetime


class TenantIn(Strict):
    name: Name
    description: str = ""
    ssh_keys: list[str] = Field(default_factory=list)


class TenantPatch(Strict):
    description: str | None = None
    ssh_keys: list[str] | None = None


class TenantOut(Out):
    id: str
    name: str
    description: str
    ssh_keys: list[str]
    created_at: datetime
    updated_at: datetime


class DiskFormat(StrEnum):
    RAW = "raw"
    QCOW2 = "qcow2"


SHA256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class ImageIn(Strict):
    name: Name
    os: str = ""
    kernel_version: str | None = None
    driver_version: str | None = None
    cuda_version: str | None = None
    disk_format: DiskFormat = DiskFormat.RAW
    location: str = Field(min_length=1, description="http(s):// or file:// URL of the image")
    sha256: SHA256 | None = None
    size_bytes: int | None = Field(None, ge=1)

    @field_validator("location")
    @classmethod
    def _location(cls, value: str) -> str:
        if not value.startswith(("http://", "https://", "file://")):
            raise ValueError("location must be an http://, https:// or file:// URL")
        return value


class ImagePatch(Strict):
    os: str | None = None
    kernel_version: str | None = None
    driver_version: str | None = None
    cuda_version: str | None = None
    sha256: SHA256 | None = None
    size_bytes: int | None = Field(None, ge=1)


class ImageOut(Out):
    id: str
    name: str
    os: str
    kernel_version: str | None
    driver_version: str | None
    cuda_version: str | None
    disk_format: str
    location: str
    sha256: str | None
    size_bytes: int | None
    created_at: datetime
    updated_at: datetime


# --- nodes ------------------------------------------------------------------------------


class BmcDriver(StrEnum):
    REDFISH = "redfish"
    IPMI = "ipmi"
    FAKE = "fake"


class BmcIn(Strict):
    driver: BmcDriver
    address: str = Field(min_length=1)
    username: str | None = None
    password: SecretStr | None = None
    verify_tls: bool = True

    @model_validator(mode="after")
    def _address(self) -> BmcIn:
        prefixes = {
            BmcDriver.REDFISH: ("http://", "https://"),
            BmcDriver.IPMI: ("ipmi://",),
            BmcDriver.FAKE: ("fake://",),
        }[self.driver]
        if not self.address.startswith(prefixes):
            raise ValueError(
                f"a {self.driver.value} BMC address starts with {' or '.join(prefixes)}, "
                f"e.g. https://10.0.0.5/redfish/v1/Systems/1 or ipmi://10.0.0.5:623"
            )
        return self


class BmcOut(Out):
    driver: str
    address: str
    username: str | None
    verify_tls: bool
    error: str | None


class PortIn(Strict):
    name: str = Field(min_length=1, max_length=32)
    mac: str
    network: Name | None = None
    switch: Name | None = None
    # as the switch names it (swp12, Ethernet48): it reaches switch command lines
    switch_port: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,31}$")
    speed_gbps: int | None = Field(None, ge=1)
    pxe: bool = False

    @field_validator("mac")
    @classmethod
    def _mac(cls, value: str) -> str:
        normal = value.strip().lower().replace("-", ":")
        if not MAC_RE.match(normal):
            raise ValueError(f"{value!r} is not a MAC address like 52:54:00:12:34:56")
        return normal


class PortOut(Out):
    name: str
    mac: str
    network: str | None
    switch: str | None
    switch_port: str | None
    speed_gbps: int | None
    pxe: bool
    switch_network: str | None = None  # where the switch last confirmed the port to be


class HardwareType(StrEnum):
    REDFISH = "redfish"
    IPMI = "ipmi"
    LAB = "lab"
    FAKE = "fake"


class NodeIn(Strict):
    name: Name
    rack: Name | None = None
    u_position: int | None = Field(None, ge=1)
    u_size: int = Field(1, ge=1, le=10)
    node_class: Name | None = None
    bmc: BmcIn
    hardware_type: HardwareType | None = Field(
        None, description="which driver composition runs the node; defaults to the BMC driver"
    )
    driver_info: dict[str, Any] = Field(default_factory=dict)
    ports: list[PortIn] = Field(default_factory=list, max_length=64)
    labels: dict[str, str] = Field(default_factory=dict)

    # Bounded input (issue 11): a node document cannot fill the database.
    _labels = field_validator("labels")(bounds.labels_within)
    _driver_info = field_validator("driver_info")(bounds.driver_info_within)
    tenant: Name | None = None

    @model_validator(mode="after")
    def _unique_ports(self) -> NodeIn:
        macs = [p.mac for p in self.ports]
        if len(macs) != len(set(macs)):
            raise ValueError("two ports of this node have the same MAC address")
        names = [p.name for p in self.ports]
        if len(names) != len(set(names)):
            raise ValueError("two ports of this node have the same name")
        return self


class NodePatch(Strict):
    rack: Name | None = None
    u_position: int | None = Field(None, ge=1)
    u_size: int | None = Field(None, ge=1, le=10)
    node_class: Name | None = None
    bmc: BmcIn | None = None
    driver_info: dict[str, Any] | None = None
    ports: list[PortIn] | None = Field(None, max_length=64)
    labels: dict[str, str] | None = None
    tenant: Name | None = None

    _labels = field_validator("labels")(bounds.labels_within)
    _driver_info = field_validator("driver_info")(bounds.driver_info_within)


class ProgressOut(BaseModel):
    percent: int | None
    step: str | None


class NodeOut(BaseModel):
    id: str
    name: str
    state: str
    power_state: str
    target_power_state: str | None
    health: str
    maintenance: bool
    maintenance_reason: str | None
    retired: bool
    progress: ProgressOut
    last_error: str | None
    rack: str | None
    u_position: int | None
    u_size: int
    node_class: str | None
    tenant: str | None
    image: str | None
    hardware_type: str
    # What policy.emit withholds from some readers (members): null for them.
    bmc: BmcOut | None = None
    ports: list[PortOut]
    labels: dict[str, Any]
    inventory: dict[str, Any]
    reservation: str | None = None
    allowed_actions: list[str]
    state_changed_at: datetime
    created_at: datetime
    updated_at: datetime


class ActionIn(Strict):
    image: Name | None = None
    # Maintenance reasons reach Slurm drain reasons: safe text only (core/safe_text.py).
    reason: str | None = Field(default=None, max_length=safe_text.REASON_MAX,
                               description=safe_text.REASON_CHARS)

    @field_validator("reason")
    @classmethod
    def _safe_reason(cls, value: str | None) -> str | None:
        return value if value is None else safe_text.require_reason(value)


class EventOut(Out):
    id: int
    time: datetime
    node: str | None = Field(validation_alias="node_name")
    kind: str
    actor: str
    from_state: str | None
    to_state: str | None
    message: str
    data: dict[str, Any]


# --- tokens ----------------------------------------------------------------------------


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    MEMBER = "member"
    VIEWER = "viewer"
    # A node's monitor credential (inventory/node_credentials.py): posts that node's health
    # reports and nothing else; in no role set of api/deps.py, never an API token's role.
    NODE = "node"


class TokenIn(Strict):
    name: Name
    role: Role
    tenant: Name | None = None
    expires_at: datetime | None = None

    @model_validator(mode="after")
    def _tenant(self) -> TokenIn:
        if self.role == Role.NODE:
            raise ValueError("node credentials are issued per node: "
                             "POST /v1/nodes/NAME/monitor-credential")
        if self.role == Role.MEMBER and not self.tenant:
            raise ValueError("a member token needs a tenant")
        if self.role != Role.MEMBER and self.tenant:
            raise ValueError("only member tokens belong to a tenant")
        return self


class TokenOut(Out):
    id: str
    name: str
    prefix: str
    role: str
    tenant: str | None
    expires_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime


class TokenCreated(TokenOut):
    token: str = Field(description="shown once; store it now")


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next: str | None = None
