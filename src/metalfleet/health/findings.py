"""What a health source reports: one finding per problem it sees on one component.

Sources (the agent's in-band checks, BMC sensors and logs, Prometheus alerts, operators) all
speak this shape; the health engine turns findings into signals, node health and remediation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SEVERITIES = ("warning", "critical")
SOURCES = ("agent", "bmc", "alert", "operator")


@dataclass(frozen=True)
class Finding:
    check: str  # gpu-xid, gpu-ecc, gpu-missing, fan, ib-link-down, disk-smart, pcie-width, ...
    component: str  # "GPU3", "FAN2", "mlx5_1", "nvme0n1"; "" for the node as a whole
    severity: str  # warning | critical
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, not {self.severity!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(check=str(data["check"]), component=str(data.get("component", "")),
                   severity=str(data.get("severity", "critical")),
                   message=str(data.get("message", "")),
                   evidence=dict(data.get("evidence") or {}))

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "component": self.component, "severity": self.severity,
                "message": self.message, "evidence": self.evidence}
