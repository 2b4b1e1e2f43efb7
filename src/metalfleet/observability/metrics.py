"""The control plane's own metrics: fleet gauges computed from the database at scrape time.

One custom collector runs a handful of GROUP BY queries per scrape, so the numbers are never
stale and nothing has to be kept in sync in memory. Served at ``GET /metrics`` (no auth), so
node counts carry no tenant names unless the operator turns them on
(``Settings.metrics_tenant_labels``, METALFLEET_METRICS_TENANT_LABELS=1): anyone who reaches
the port would otherwise learn who rents how many nodes of which class.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from metalfleet.db import models as m
from metalfleet.db.base import utcnow
from metalfleet.db.session import Database
from metalfleet.health.metrics import HealthCollector

BMC_ERROR_KINDS = ("timeout", "auth", "unreachable", "other")


def bmc_error_kind(message: str) -> str:
    """Sort a stored BMC error message into a small, bounded set of label values."""
    text = message.lower()
    if "timed out" in text or "timeout" in text:
        return "timeout"
    if any(w in text for w in ("auth", "401", "403", "credential", "password", "unauthor")):
        return "auth"
    if any(w in text for w in ("refused", "unreachable", "connect", "no route", "resolve",
                               "name or service")):
        return "unreachable"
    return "other"


class FleetCollector(Collector):
    """Node counts by state/health/class (and tenant, when enabled), BMC errors, maintenance,
    live conductors."""

    def __init__(self, db: Database, *, conductor_dead_after_s: float = 30.0,
                 tenant_labels: bool = False) -> None:
        self.db = db
        self.conductor_dead_after_s = conductor_dead_after_s
        self.tenant_labels = tenant_labels

    def collect(self) -> Iterator[Metric]:
        labels = ["state", "health", "class"] + (["tenant"] if self.tenant_labels else [])
        nodes = GaugeMetricFamily(
            "metalfleet_nodes", "Nodes by lifecycle state, health and node class"
            + (" and tenant" if self.tenant_labels else ""), labels=labels)
        bmc = GaugeMetricFamily(
            "metalfleet_nodes_bmc_errors", "Nodes whose last BMC contact failed, by error kind",
            labels=["kind"])
        maintenance = GaugeMetricFamily(
            "metalfleet_nodes_maintenance", "Nodes in maintenance")
        conductors = GaugeMetricFamily(
            "metalfleet_conductors_alive", "Conductors whose heartbeat is recent")
        with self.db.session() as session:
            for values, count in self._node_counts(session):
                nodes.add_metric(values, float(count))
            kinds = dict.fromkeys(BMC_ERROR_KINDS, 0)
            errors = session.execute(
                select(m.Node.bmc_error, func.count(m.Node.id))
                .where(m.Node.bmc_error.is_not(None), m.Node.bmc_error != "")
                .group_by(m.Node.bmc_error)
            ).all()
            for message, count in errors:
                kinds[bmc_error_kind(str(message))] += int(count)
            for kind, count in kinds.items():
                bmc.add_metric([kind], float(count))
            in_maintenance = session.scalar(
                select(func.count(m.Node.id)).where(m.Node.maintenance.is_(True)))
            maintenance.add_metric([], float(in_maintenance or 0))
            cutoff = utcnow() - timedelta(seconds=self.conductor_dead_after_s)
            alive = session.scalar(
                select(func.count(m.Conductor.name)).where(m.Conductor.heartbeat_at >= cutoff))
            conductors.add_metric([], float(alive or 0))
        yield nodes
        yield bmc
        yield maintenance
        yield conductors

    def _node_counts(self, session: Session) -> list[tuple[list[str], int]]:
        columns = [m.Node.state, m.Node.health, m.NodeClass.name]
        if self.tenant_labels:
            columns.append(m.Tenant.name)
        query = (select(*columns, func.count(m.Node.id)).select_from(m.Node)
                 .outerjoin(m.NodeClass, m.Node.node_class_id == m.NodeClass.id))
        if self.tenant_labels:
            query = query.outerjoin(m.Tenant, m.Node.tenant_id == m.Tenant.id)
        rows = session.execute(query.group_by(*columns)).all()
        return [([str(v or "") for v in row[:-1]], int(row[-1])) for row in rows]


def fleet_registry(db: Database, *, conductor_dead_after_s: float = 30.0,
                   tenant_labels: bool = False) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(db, conductor_dead_after_s=conductor_dead_after_s,
                                     tenant_labels=tenant_labels))
    registry.register(HealthCollector(db))  # open repair tickets, active health signals
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition format (version 0.0.4)."""
    return generate_latest(registry)
