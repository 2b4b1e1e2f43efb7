"""Observability: /metrics for Prometheus, HTTP service discovery, the Alertmanager webhook."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response

from metalfleet.api.deps import WRITE, Context, DbSession, require
from metalfleet.inventory import schemas as s
from metalfleet.observability import alerts, discovery

# The classic text format (what generate_latest writes; Prometheus 2.x asks for it). The
# prometheus_client package is imported only by /metrics, so the rest of the API runs without it.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

router = APIRouter()

SD_READERS = WRITE | {s.Role.VIEWER}


@router.get("/metrics", tags=["observability"], response_class=Response,
            responses={200: {"content": {CONTENT_TYPE: {}}}})
def prometheus_metrics(context: Context) -> Response:
    """Fleet gauges in the Prometheus text format. No auth: counts only, no names."""
    from metalfleet.observability import metrics

    if context.metrics_registry is None:
        context.metrics_registry = metrics.fleet_registry(
            context.db, conductor_dead_after_s=context.settings.conductor_dead_after_s,
            tenant_labels=context.settings.metrics_tenant_labels)
    return Response(metrics.render(context.metrics_registry), media_type=CONTENT_TYPE)


@router.get("/v1/observability/prometheus/sd", tags=["observability"],
            dependencies=[Depends(require(SD_READERS, "Prometheus service discovery"))])
def prometheus_sd(session: DbSession) -> list[dict[str, Any]]:
    """Prometheus HTTP SD: the exporters of every active node, labelled for the shipped rules."""
    return discovery.targets(session)


@router.post("/v1/observability/alertmanager/webhook", tags=["observability"],
             response_model=alerts.WebhookResult,
             dependencies=[Depends(require(WRITE, "posting alerts"))])
def alertmanager_webhook(session: DbSession, body: alerts.WebhookPayload) -> alerts.WebhookResult:
    """Alertmanager's webhook receiver: alerts naming a node become node events (kind alert)."""
    return alerts.ingest(session, body)
