"""Health: signals from the agent, BMCs and alerts; repair tickets; acceptance runs.

The health engine (metalfleet.health) owns these tables. A node's ``health`` column is the
summary (ok/degraded/failed); the evidence behind it lives here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from metalfleet.db.base import Base, IdMixin, utcnow


class HealthSignal(IdMixin, Base):
    """One check's finding on one component of a node, from one source.

    A signal is ``active`` while the source keeps reporting the problem and ``cleared`` once it
    reports the component fine again. ``strikes`` counts how often an active signal was seen
    (two-strike rules act on the second sighting within the window).
    """

    __tablename__ = "health_signals"
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(16))  # agent | bmc | alert | operator
    check: Mapped[str] = mapped_column(String(63))  # gpu-xid, gpu-ecc, fan, disk-smart, ...
    component: Mapped[str] = mapped_column(String(127), default="")  # "GPU3", "FAN2", "mlx5_1"
    severity: Mapped[str] = mapped_column(String(16))  # warning | critical
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | cleared
    message: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    strikes: Mapped[int] = mapped_column(Integer, default=1)
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)
    cleared_at: Mapped[datetime | None] = mapped_column(default=None)


class RepairTicket(IdMixin, Base):
    """A request to fix a node's hardware: component, evidence and timestamps."""

    __tablename__ = "repair_tickets"
    node_id: Mapped[str | None] = mapped_column(
        ForeignKey("nodes.id", ondelete="SET NULL"), index=True, default=None
    )
    node_name: Mapped[str] = mapped_column(String(63))
    component: Mapped[str] = mapped_column(String(127), default="")
    summary: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[list[Any]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | resolved
    cluster_name: Mapped[str | None] = mapped_column(String(63), default=None)
    replacement_node: Mapped[str | None] = mapped_column(String(63), default=None)
    resolution: Mapped[str | None] = mapped_column(Text, default=None)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)


class AcceptanceRun(IdMixin, Base):
    """One run of a node class's acceptance test plan on a node, with every step's result."""

    __tablename__ = "acceptance_runs"
    node_id: Mapped[str | None] = mapped_column(
        ForeignKey("nodes.id", ondelete="SET NULL"), index=True, default=None
    )
    node_name: Mapped[str] = mapped_column(String(63))
    node_class: Mapped[str | None] = mapped_column(String(63), default=None)
    reason: Mapped[str] = mapped_column(String(32), default="burn-in")  # burn-in | revalidation
    plan: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # [{"step", "status": pass|fail|not-applicable, "measured", "unit", "spec", "threshold",
    #   "detail"}]
    results: Mapped[list[Any]] = mapped_column(default=list)
    passed: Mapped[bool | None] = mapped_column(Boolean, default=None)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
