"""Shapes of clusters and quotas as the API sees them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from metalfleet.inventory.schemas import Name, Strict


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


class QuotaIn(Strict):
    max_nodes: int = Field(ge=0)


class QuotaOut(BaseModel):
    tenant: str
    node_class: str
    max_nodes: int
    used: int
