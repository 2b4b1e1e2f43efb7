"""Shapes of clusters and quotas as the API sees them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from metalfleet.core import safe_text
from metalfleet.inventory.schemas import Name, Strict
from metalfleet.scheduling.hostlist import expand
from metalfleet.scheduling.slurm.config import SlurmSite


class SchedulerKind(StrEnum):
    SLURM = "slurm"
    KUBERNETES = "kubernetes"
    NONE = "none"


class Constraints(Strict):
    same_leaf: bool = Field(default=False, description="every node on one leaf switch (hard)")
    spread_racks: bool = Field(default=False, description="spread the nodes over as many racks")
    labels: dict[str, str] = Field(default_factory=dict, description="nodes must carry these")


class ClusterIn(Strict):
    name: Name
    scheduler: SchedulerKind = SchedulerKind.NONE
    node_class: Name
    count: int = Field(ge=1, le=100_000)
    tenant: Name | None = Field(None, description="required for operators; members get theirs")
    constraints: Constraints = Field(default_factory=lambda: Constraints())


def _absolute(path: str) -> str:
    if not path.startswith("/"):
        raise ValueError(f"{path!r} must be an absolute path")
    return path


def _hostlist(value: str) -> str:
    expand(value)  # raises ValueError with how to write it
    return value


class SlurmQosIn(Strict):
    """The tenant's QoS; created with sacctmgr (slurmdbd), allowed on the tenant's partition."""

    name: Name | None = Field(None, description="default: the tenant's name (or the cluster's)")
    priority: int = Field(0, ge=0)
    grp_tres: str | None = Field(None, description='tenant total, e.g. "gres/gpu=64"')
    max_tres_per_user: str | None = Field(None, description='e.g. "gres/gpu=16"')
    max_wall: str | None = Field(None, description='e.g. "2-00:00:00"')
    max_jobs_per_user: int | None = Field(None, ge=1)


class SlurmPowerIn(Strict):
    """Make metalfleet Slurm's power-saving backend (SuspendProgram/ResumeProgram)."""

    api_url: str = Field(description="the metalfleet API as seen from slurmctld's host")
    token_file: str = Field(description="file holding a metalfleet API token, readable by "
                            "SlurmUser only (the token itself is never stored here)")
    command: list[str] = Field(default_factory=lambda: ["metalfleet"], min_length=1,
                               description="argv that runs the metalfleet CLI")
    suspend_time_s: int = Field(600, ge=1, description="idle seconds before power off")
    suspend_timeout_s: int = Field(120, ge=1)
    resume_timeout_s: int = Field(600, ge=1)
    exclude: str = Field("", description="host list never powered off (SuspendExcNodes)")

    _abs = field_validator("token_file")(_absolute)
    _hosts = field_validator("exclude")(_hostlist)


class SlurmConfig(Strict):
    conf: str = Field(description="slurm.conf on the API host; push writes its directory")
    prefix: list[str] = Field(default_factory=list,
                              description='runs Slurm commands, e.g. ["ssh", "head"]')
    remote_shell: bool | None = Field(
        None, description="the prefix joins the command into one remote shell line (ssh): "
        "metalfleet then shell-quotes every argument; default: when the prefix starts with ssh")
    timeout_s: float = Field(15.0, gt=0, le=300)
    site: SlurmSite | None = Field(None, description="slurm.conf choices (default: Debian's)")
    max_time: str = Field("INFINITE", pattern=r"^(INFINITE|UNLIMITED|[0-9:-]+)$",
                          description="the partition's MaxTime, e.g. 2-00:00:00")
    qos: SlurmQosIn | None = None
    power_saving: SlurmPowerIn | None = None

    _abs = field_validator("conf")(_absolute)


class KubernetesConfig(Strict):
    kubectl: list[str] = Field(default_factory=lambda: ["kubectl"], min_length=1)
    remote_shell: bool | None = Field(
        None, description="kubectl runs through a remote shell (ssh ... kubectl): arguments "
        "are shell-quoted; default: when the argv starts with ssh")
    timeout_s: float = Field(60.0, gt=0, le=900)
    service_network: Name | None = Field(
        None, description="network whose free IPAM addresses MetalLB hands out "
        "(default: the network with role 'service')")
    service_addresses: int = Field(16, ge=1, le=4096,
                                   description="how many addresses MetalLB's pool gets")
    api_server_endpoint: str | None = Field(None, description="host:port for kubeadm join")
    ca_cert_hashes: list[str] = Field(default_factory=list,
                                      description='"sha256:<hex>" of the cluster CA')


class SchedulerConfig(Strict):
    slurm: SlurmConfig | None = None
    kubernetes: KubernetesConfig | None = None


class ClusterPatch(Strict):
    scheduler_config: dict[str, Any] = Field(
        description="JSON merge patch (RFC 7396) onto the cluster's scheduler_config: objects "
        "merge, null removes a key, anything else replaces; the result must be a valid "
        "SchedulerConfig")


class DrainIn(Strict):
    reason: str = Field(min_length=1, max_length=safe_text.REASON_MAX,
                        description=f"why; {safe_text.REASON_CHARS}")

    _safe = field_validator("reason")(safe_text.require_reason)


class HookOut(BaseModel):
    node: str
    scheduler: str
    action: str
    ok: bool
    detail: str


class PowerIn(Strict):
    action: Literal["suspend", "resume"]
    nodes: str = Field(min_length=1, description="Slurm host list, e.g. gpu-[01-04]")

    _hosts = field_validator("nodes")(_hostlist)


class PowerNodeOut(BaseModel):
    name: str
    power_state: str | None
    target_power_state: str | None


class PowerOut(BaseModel):
    action: str
    nodes: list[PowerNodeOut]


class PushOut(BaseModel):
    scheduler: str
    directory: str | None
    files: dict[str, str] = Field(description="file -> added | changed | unchanged")
    nodes_added: list[str]
    nodes_removed: list[str]
    reconfigured: bool
    restart_required: bool
    output: str


class ClusterNodeOut(BaseModel):
    name: str
    rack: str | None
    leaf: str | None
    state: str


class ClusterOut(BaseModel):
    id: str
    name: str
    tenant: str | None
    scheduler: str
    node_class: str
    count: int
    constraints: Constraints
    state: str
    leaves: list[str]
    racks: list[str]
    nodes: list[ClusterNodeOut]
    created_at: datetime
    # Withheld (null) by policy.emit from members; allow-listed keys only for the others.
    scheduler_config: dict[str, Any] | None = None


class QuotaIn(Strict):
    max_nodes: int = Field(ge=0)


class QuotaOut(BaseModel):
    tenant: str
    node_class: str
    max_nodes: int
    used: int
