"""Alert intake: Alertmanager's webhook payload (version 4) becomes node events.

Each alert whose labels name a node (label ``node``, as the exported rules and the service
discovery labels guarantee) is recorded as a node event of kind ``alert`` with its status
(firing or resolved), alertname, severity and summary, and fed to the health engine
(health/alerts.py: firing -> a finding, resolved -> cleared). Alerts for nodes metalfleet does
not know are counted and dropped; alerts without a ``node`` label are counted as unlabelled.

Labels are untrusted (anyone who can reach Alertmanager, or a tenant's own exporter, shapes
them): a ``node`` label that is not a valid node name is dropped like an unknown node (and
not echoed back), and the alertname and component labels are reduced to safe text by the
health intake before they can reach a drain reason or a scheduler command.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from metalfleet.core import safe_text
from metalfleet.db import models as m
from metalfleet.health import alerts as health_alerts
from metalfleet.inventory import events

ACTOR = "alertmanager"


class WebhookAlert(BaseModel):
    model_config = ConfigDict(extra="allow")
    status: str = "firing"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str | None = None
    endsAt: str | None = None
    generatorURL: str | None = None
    fingerprint: str | None = None


class WebhookPayload(BaseModel):
    """https://prometheus.io/docs/alerting/latest/configuration/#webhook_config"""

    model_config = ConfigDict(extra="allow")
    version: str = "4"
    status: str = "firing"
    receiver: str = ""
    groupKey: str = ""
    alerts: list[WebhookAlert] = Field(default_factory=list)


class WebhookResult(BaseModel):
    received: int
    recorded: int
    unknown_nodes: int
    unlabelled: int
    unknown_node_names: list[str]


def ingest(session: Session, payload: WebhookPayload) -> WebhookResult:
    names = {a.labels["node"] for a in payload.alerts
             if safe_text.is_name(a.labels.get("node") or "")}
    nodes = {n.name: n for n in session.scalars(select(m.Node).where(m.Node.name.in_(names)))}
    recorded = unknown = unlabelled = 0
    unknown_names: set[str] = set()
    for alert in payload.alerts:
        name = alert.labels.get("node")
        if not name:
            unlabelled += 1
            continue
        node = nodes.get(name)
        if node is None:
            unknown += 1
            if safe_text.is_name(name):  # a hostile label is neither looked up nor echoed
                unknown_names.add(name)
            continue
        alertname = alert.labels.get("alertname", "")
        severity = alert.labels.get("severity", "")
        summary = alert.annotations.get("summary", "")
        status = "resolved" if alert.status == "resolved" else "firing"
        data: dict[str, Any] = {
            "status": status, "alertname": alertname, "severity": severity,
            "summary": summary, "labels": alert.labels, "fingerprint": alert.fingerprint,
            "starts_at": alert.startsAt, "ends_at": alert.endsAt,
            "receiver": payload.receiver,
        }
        message = f"alert {alertname} {status}" + (f" ({severity})" if severity else "")
        if summary:
            message += f": {summary}"
        events.record(session, node=node, kind="alert", actor=ACTOR, message=message, data=data)
        health_alerts.feed(session, node, status, alert.labels, alert.annotations, actor=ACTOR)
        recorded += 1
    return WebhookResult(received=len(payload.alerts), recorded=recorded, unknown_nodes=unknown,
                         unlabelled=unlabelled, unknown_node_names=sorted(unknown_names))
