"""Health gauges for /metrics: open repair tickets, active signals by source/check/severity."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from metalfleet.db import health_models as hm
from metalfleet.db.session import Database


class HealthCollector(Collector):
    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[Metric]:
        tickets = GaugeMetricFamily("metalfleet_repair_tickets_open",
                                    "Repair tickets not yet resolved")
        signals = GaugeMetricFamily(
            "metalfleet_health_signals_active", "Active health signals",
            labels=["source", "check", "severity"])
        with self.db.session() as session:
            open_count = session.scalar(select(func.count(hm.RepairTicket.id))
                                        .where(hm.RepairTicket.status == "open"))
            tickets.add_metric([], float(open_count or 0))
            rows = session.execute(
                select(hm.HealthSignal.source, hm.HealthSignal.check,
                       hm.HealthSignal.severity, func.count(hm.HealthSignal.id))
                .where(hm.HealthSignal.status == "active")
                .group_by(hm.HealthSignal.source, hm.HealthSignal.check,
                          hm.HealthSignal.severity)).all()
            for source, check, severity, count in rows:
                signals.add_metric([source, check, severity], float(count))
        yield tickets
        yield signals
