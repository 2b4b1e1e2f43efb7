"""Alertmanager alerts as health findings (source "alert").

A firing alert naming a node is a finding: check = the alertname, component from the
``gpu``, ``device`` or ``port`` label, severity critical when the alert's ``severity`` label
says so, else warning. A resolved alert clears its signal.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.orm import Session

from metalfleet.db import models as m
from metalfleet.health import intake
from metalfleet.health.findings import Finding

SOURCE = "alert"


def component_of(labels: Mapping[str, str]) -> str:
    gpu = labels.get("gpu")
    if gpu:
        return f"GPU{gpu}" if gpu.isdigit() else gpu
    return labels.get("device") or labels.get("port") or ""


def finding_of(labels: Mapping[str, str], annotations: Mapping[str, str]) -> Finding:
    severity = "critical" if labels.get("severity", "").lower() == "critical" else "warning"
    message = annotations.get("summary") or annotations.get("description") or ""
    return Finding(check=labels.get("alertname") or "alert", component=component_of(labels),
                   severity=severity, message=message,
                   evidence={"labels": dict(labels), "annotations": dict(annotations)})


def feed(session: Session, node: m.Node, status: str, labels: Mapping[str, str],
         annotations: Mapping[str, str], *, actor: str) -> None:
    finding = finding_of(labels, annotations)
    if status == "resolved":
        intake.clear(session, node, SOURCE, finding.check, finding.component, actor=actor)
    else:
        intake.report(session, node, SOURCE, [finding], actor=actor)
