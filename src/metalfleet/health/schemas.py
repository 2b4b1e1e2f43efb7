"""API shapes of the health engine: reports in; signals, node health and tickets out."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from metalfleet.core import bounds, safe_text
from metalfleet.db import health_models as hm
from metalfleet.db import models as m
from metalfleet.health.findings import Finding
from metalfleet.inventory.schemas import Strict

# Bounds on what a node (or any source) may send in one report (issue 11: bounded input).
MAX_FINDINGS = 256
MAX_MESSAGE = 2000
MAX_EVIDENCE_BYTES = 16 * 1024


class FindingIn(Strict):
    # Check names and components reach drain reasons and scheduler commands: safe text only.
    check: str = Field(min_length=1, max_length=safe_text.CHECK_MAX,
                       description=safe_text.TOKEN_CHARS)
    component: str = Field("", max_length=safe_text.COMPONENT_MAX,
                           description=safe_text.COMPONENT_CHARS)
    severity: Literal["warning", "critical"]
    message: str = Field("", max_length=MAX_MESSAGE)
    evidence: dict[str, Any] = Field(default_factory=dict,
                                     description=f"at most {MAX_EVIDENCE_BYTES} bytes as JSON")

    _check = field_validator("check")(safe_text.require_check)
    _component = field_validator("component")(safe_text.require_component)

    @field_validator("evidence")
    @classmethod
    def _small_evidence(cls, value: dict[str, Any]) -> dict[str, Any]:
        return bounds.json_within(value, MAX_EVIDENCE_BYTES, "evidence")

    def to_finding(self) -> Finding:
        return Finding(self.check, self.component, self.severity, self.message,
                       dict(self.evidence))


class HealthReportIn(Strict):
    source: Literal["agent", "bmc", "alert", "operator"] = "agent"
    findings: list[FindingIn] = Field(default_factory=list, max_length=MAX_FINDINGS)
    # Checks that ran: their active signals that are not among the findings clear.
    checks_run: list[str] | None = Field(None, max_length=MAX_FINDINGS)

    @field_validator("checks_run")
    @classmethod
    def _safe_checks(cls, value: list[str] | None) -> list[str] | None:
        for check in value or []:
            safe_text.require_check(check, "checks_run entry")
        return value


class SignalOut(BaseModel):
    id: str
    node: str
    source: str
    check: str
    component: str
    severity: str
    status: str
    message: str
    evidence: dict[str, Any]
    strikes: int
    first_seen: datetime
    last_seen: datetime
    cleared_at: datetime | None


class TicketOut(BaseModel):
    id: str
    node: str
    component: str
    summary: str
    status: str
    cluster: str | None
    replacement_node: str | None
    resolution: str | None
    evidence: list[Any]
    opened_at: datetime
    resolved_at: datetime | None


class NodeHealthOut(BaseModel):
    node: str
    health: str
    maintenance: bool
    maintenance_reason: str | None
    signals: list[SignalOut]
    ticket: TicketOut | None


class TicketIn(Strict):
    node: str = Field(max_length=63)
    component: str = Field("", max_length=safe_text.COMPONENT_MAX,
                           description=safe_text.COMPONENT_CHARS)
    summary: str = Field(min_length=1, max_length=MAX_MESSAGE)

    _component = field_validator("component")(safe_text.require_component)


class ResolveIn(Strict):
    note: str = Field(min_length=1, max_length=MAX_MESSAGE)


def signal_out(signal: hm.HealthSignal, node_name: str) -> SignalOut:
    return SignalOut(id=signal.id, node=node_name, source=signal.source, check=signal.check,
                     component=signal.component, severity=signal.severity,
                     status=signal.status, message=signal.message,
                     evidence=signal.evidence or {}, strikes=signal.strikes,
                     first_seen=signal.first_seen, last_seen=signal.last_seen,
                     cleared_at=signal.cleared_at)


def ticket_out(ticket: hm.RepairTicket) -> TicketOut:
    return TicketOut(id=ticket.id, node=ticket.node_name, component=ticket.component,
                     summary=ticket.summary, status=ticket.status,
                     cluster=ticket.cluster_name, replacement_node=ticket.replacement_node,
                     resolution=ticket.resolution, evidence=ticket.evidence or [],
                     opened_at=ticket.opened_at, resolved_at=ticket.resolved_at)


def node_health_out(node: m.Node, signals: list[hm.HealthSignal],
                    ticket: hm.RepairTicket | None) -> NodeHealthOut:
    return NodeHealthOut(node=node.name, health=node.health, maintenance=node.maintenance,
                         maintenance_reason=node.maintenance_reason,
                         signals=[signal_out(s, node.name) for s in signals],
                         ticket=ticket_out(ticket) if ticket else None)
