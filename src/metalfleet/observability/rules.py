"""Prometheus alerting and recording rules, and their promtool unit tests, as Python data.

Every alert carries ``severity`` and the ``node`` label of its series (set by the HTTP service
discovery), so Alertmanager can group by node and metalfleet's webhook can map it to a node.
Annotations use only ``{{ $labels.X }}`` and ``{{ $value }}`` so the unit tests below can
render the expected text (``render``) without a Go template engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

FS = 'fstype!~"tmpfs|ramfs|overlay|squashfs"'


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    severity: str
    summary: str
    description: str
    for_: str = "0m"
    component: str = ""

    def rule(self) -> dict[str, Any]:
        rule: dict[str, Any] = {"alert": self.name, "expr": self.expr}
        if self.for_ != "0m":
            rule["for"] = self.for_
        rule["labels"] = {"severity": self.severity, "component": self.component}
        rule["annotations"] = {"summary": self.summary, "description": self.description}
        return rule


NODE_ALERTS = [
    Alert("NodeDown", 'up{node!=""} == 0', "critical",
          "{{ $labels.node }}: {{ $labels.role }} is not answering",
          "Prometheus cannot scrape {{ $labels.instance }} ({{ $labels.role }}).",
          for_="2m", component="node"),
    Alert("MetalfleetControlPlaneDown", 'up{job="metalfleet"} == 0', "critical",
          "metalfleet control plane is not answering",
          "Prometheus cannot scrape {{ $labels.instance }}/metrics.", for_="2m",
          component="control-plane"),
    Alert("DiskFillingUp",
          f"(node_filesystem_avail_bytes{{{FS}}} / node_filesystem_size_bytes{{{FS}}} < 0.2)"
          f" and predict_linear(node_filesystem_avail_bytes{{{FS}}}[1h], 4 * 3600) < 0",
          "warning", "{{ $labels.node }}: {{ $labels.mountpoint }} fills up within 4 h",
          "Less than 20% free on {{ $labels.mountpoint }} and falling.", for_="15m",
          component="disk"),
    Alert("DiskAlmostFull",
          f"node_filesystem_avail_bytes{{{FS}}} / node_filesystem_size_bytes{{{FS}}} < 0.05",
          "critical", "{{ $labels.node }}: {{ $labels.mountpoint }} is over 95% full",
          "Less than 5% free on {{ $labels.mountpoint }}.", for_="5m", component="disk"),
    Alert("NetworkInterfaceErrors",
          "increase(node_network_receive_errs_total[10m])"
          " + increase(node_network_transmit_errs_total[10m]) > 100",
          "warning", "{{ $labels.node }}: errors on {{ $labels.device }}",
          "More than 100 receive/transmit errors in 10 minutes on {{ $labels.device }}.",
          for_="5m", component="network"),
    Alert("InfinibandLinkFlapping",
          "increase(node_infiniband_link_downed_total[15m]) >= 2", "warning",
          "{{ $labels.node }}: InfiniBand {{ $labels.device }} port {{ $labels.port }} flaps",
          "The link went down at least twice in 15 minutes.", component="infiniband"),
    Alert("BmcUnreachable", "metalfleet_nodes_bmc_errors > 0", "warning",
          "{{ $value }} nodes fail BMC contact ({{ $labels.kind }})",
          "metalfleet's last BMC contact failed for these nodes; see GET /v1/nodes?filter=...",
          for_="5m", component="bmc"),
]

GPU_ALERTS = [
    Alert("GpuXidError", "DCGM_FI_DEV_XID_ERRORS > 0", "critical",
          "{{ $labels.node }}: GPU {{ $labels.gpu }} reported XID {{ $value }}",
          "An XID error means a driver-detected GPU fault; see NVIDIA's XID catalogue.",
          component="gpu"),
    Alert("GpuEccDoubleBitError", "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL > 0", "critical",
          "{{ $labels.node }}: GPU {{ $labels.gpu }} has uncorrectable ECC errors",
          "Double-bit (uncorrectable) volatile ECC errors: {{ $value }}.", component="gpu"),
    Alert("GpuOverheating", "DCGM_FI_DEV_GPU_TEMP > 85", "warning",
          "{{ $labels.node }}: GPU {{ $labels.gpu }} at {{ $value }} C",
          "GPU temperature above 85 C for 5 minutes.", for_="5m", component="gpu"),
    Alert("GpuPcieLinkDegraded", "DCGM_FI_DEV_PCIE_LINK_WIDTH < 16", "warning",
          "{{ $labels.node }}: GPU {{ $labels.gpu }} PCIe link at x{{ $value }}",
          "The PCIe link trained below x16.", for_="5m", component="gpu"),
]

RECORDING_RULES: list[dict[str, str]] = [
    {"record": "metalfleet:nodes:by_state", "expr": "sum by (state) (metalfleet_nodes)"},
    {"record": "metalfleet:nodes_unhealthy:count",
     "expr": 'sum(metalfleet_nodes{health!="ok"}) or vector(0)'},
    {"record": "node:cpu_utilisation:ratio",
     "expr": '1 - avg by (node) (rate(node_cpu_seconds_total{mode="idle"}[5m]))'},
    {"record": "node:memory_utilisation:ratio",
     "expr": "1 - avg by (node) (node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)"},
    {"record": "node:gpu_utilisation:avg", "expr": "avg by (node) (DCGM_FI_DEV_GPU_UTIL)"},
    {"record": "node:gpu_temp:max", "expr": "max by (node) (DCGM_FI_DEV_GPU_TEMP)"},
    {"record": "cluster:gpu_utilisation:avg", "expr": "avg by (cluster) (DCGM_FI_DEV_GPU_UTIL)"},
]

ALL_ALERTS = {a.name: a for a in NODE_ALERTS + GPU_ALERTS}


def rules_file() -> dict[str, Any]:
    return {"groups": [
        {"name": "metalfleet-node", "rules": [a.rule() for a in NODE_ALERTS]},
        {"name": "metalfleet-gpu", "rules": [a.rule() for a in GPU_ALERTS]},
        {"name": "metalfleet-recording", "rules": RECORDING_RULES},
    ]}


_LABEL = re.compile(r"\{\{ \$labels\.(\w+) \}\}")


def render(template: str, labels: dict[str, str], value: float) -> str:
    """Render our annotation subset as Prometheus would ({{ $value }} as Go's %v of a float)."""
    text = _LABEL.sub(lambda match: labels.get(match.group(1), ""), template)
    shown = str(int(value)) if float(value).is_integer() else repr(value)
    return text.replace("{{ $value }}", shown)


@dataclass
class Case:
    """One promtool unit test: input series, then expectations at eval times."""

    name: str
    series: dict[str, str]
    alerts: list[tuple[str, str, list[tuple[dict[str, str], float]]]] = field(
        default_factory=list)  # (eval_time, alertname, [(series labels, value)]); [] = silent
    exprs: list[tuple[str, str, list[tuple[str, float]]]] = field(default_factory=list)


GPU = {"node": "g1", "gpu": "0", "instance": "10.0.0.11:9400", "job": "metalfleet-nodes",
       "role": "gpu-exporter"}
NODE = {"node": "g1", "instance": "10.0.0.11:9100", "job": "metalfleet-nodes",
        "role": "node-exporter"}
DISK = {**NODE, "device": "/dev/nvme0n1p2", "fstype": "ext4", "mountpoint": "/"}


def _sel(name: str, labels: dict[str, str]) -> str:
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


CASES = [
    Case("node down fires after 2m, not for a node that answers", {
        _sel("up", NODE): "1 1 0 0 0 0",
        _sel("up", {**NODE, "node": "g2", "instance": "g2:9100"}): "1 1 1 1 1 1",
    }, alerts=[("3m", "NodeDown", []), ("5m", "NodeDown", [(NODE, 0)])]),
    Case("control plane down after 2m", {
        _sel("up", {"job": "metalfleet", "instance": "cp:8080"}): "1 0 0 0 0",
    }, alerts=[("2m", "MetalfleetControlPlaneDown", []), ("4m", "MetalfleetControlPlaneDown", [
        ({"job": "metalfleet", "instance": "cp:8080"}, 0)])]),
    Case("disk almost full fires under 5% free, not at 10%", {
        _sel("node_filesystem_size_bytes", DISK): "1000+0x10",
        _sel("node_filesystem_avail_bytes", DISK): "40+0x10",
        _sel("node_filesystem_size_bytes", {**DISK, "node": "g2"}): "1000+0x10",
        _sel("node_filesystem_avail_bytes", {**DISK, "node": "g2"}): "100+0x10",
    }, alerts=[("3m", "DiskAlmostFull", []), ("6m", "DiskAlmostFull", [(DISK, 0.04)])]),
    Case("network errors fire on a burst, not on a trickle", {
        _sel("node_network_receive_errs_total", {**NODE, "device": "eth0"}): "0+50x20",
        _sel("node_network_transmit_errs_total", {**NODE, "device": "eth0"}): "0+0x20",
        _sel("node_network_receive_errs_total", {**NODE, "device": "eth1"}): "0+1x20",
        _sel("node_network_transmit_errs_total", {**NODE, "device": "eth1"}): "0+0x20",
    }, alerts=[("15m", "NetworkInterfaceErrors", [({**NODE, "device": "eth0"}, 500)])]),
    Case("disk filling up fires when low and falling, not when low and steady", {
        _sel("node_filesystem_size_bytes", DISK): "1000+0x120",
        _sel("node_filesystem_avail_bytes", DISK): "190-1x120",
        _sel("node_filesystem_size_bytes", {**DISK, "node": "g2"}): "1000+0x120",
        _sel("node_filesystem_avail_bytes", {**DISK, "node": "g2"}): "150+0x120",
    }, alerts=[("10m", "DiskFillingUp", []), ("90m", "DiskFillingUp", [(DISK, 100)])]),
    Case("XID fires on a non-zero XID, silent on zero", {
        _sel("DCGM_FI_DEV_XID_ERRORS", GPU): "0 0 79 79",
        _sel("DCGM_FI_DEV_XID_ERRORS", {**GPU, "gpu": "1"}): "0 0 0 0",
    }, alerts=[("1m", "GpuXidError", []), ("3m", "GpuXidError", [(GPU, 79)])]),
    Case("ECC double-bit fires on any uncorrectable error", {
        _sel("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", GPU): "0 0 2 2",
        _sel("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", {**GPU, "gpu": "1"}): "0 0 0 0",
    }, alerts=[("1m", "GpuEccDoubleBitError", []),
               ("3m", "GpuEccDoubleBitError", [(GPU, 2)])]),
    Case("thermal fires after 5 minutes above 85 C, not on a short spike", {
        _sel("DCGM_FI_DEV_GPU_TEMP", GPU): "70 90 90 90 90 90 90 90 90",
        _sel("DCGM_FI_DEV_GPU_TEMP", {**GPU, "gpu": "1"}): "70 90 90 70 70 70 70 70 70",
    }, alerts=[("4m", "GpuOverheating", []), ("7m", "GpuOverheating", [(GPU, 90)])],
        exprs=[("7m", "node:gpu_temp:max", [('node:gpu_temp:max{node="g1"}', 90)])]),
    Case("PCIe degraded fires on x8, silent on x16", {
        _sel("DCGM_FI_DEV_PCIE_LINK_WIDTH", GPU): "8+0x10",
        _sel("DCGM_FI_DEV_PCIE_LINK_WIDTH", {**GPU, "gpu": "1"}): "16+0x10",
    }, alerts=[("3m", "GpuPcieLinkDegraded", []), ("6m", "GpuPcieLinkDegraded", [(GPU, 8)])]),
    Case("IB link flap fires on repeated downs, silent on an old steady counter", {
        _sel("node_infiniband_link_downed_total", {**NODE, "device": "mlx5_0", "port": "1"}):
            "0 0 0 1 2 3 3 3",
        _sel("node_infiniband_link_downed_total", {**NODE, "device": "mlx5_1", "port": "1"}):
            "5+0x7",
    }, alerts=[("7m", "InfinibandLinkFlapping", [
        ({**NODE, "device": "mlx5_0", "port": "1"}, 3)])]),
    Case("BMC unreachable after 5 minutes of errors", {
        _sel("metalfleet_nodes_bmc_errors", {"job": "metalfleet", "instance": "cp:8080",
                                             "kind": "timeout"}): "0 2 2 2 2 2 2 2",
        _sel("metalfleet_nodes_bmc_errors", {"job": "metalfleet", "instance": "cp:8080",
                                             "kind": "auth"}): "0+0x7",
    }, alerts=[("3m", "BmcUnreachable", []), ("7m", "BmcUnreachable", [
        ({"job": "metalfleet", "instance": "cp:8080", "kind": "timeout"}, 2)])]),
    Case("recording rules: fleet by state, GPU utilisation per node and cluster", {
        _sel("metalfleet_nodes", {"job": "metalfleet", "instance": "cp", "state": "active",
                                  "health": "ok", "class": "h100", "tenant": "acme"}): "3",
        _sel("metalfleet_nodes", {"job": "metalfleet", "instance": "cp", "state": "active",
                                  "health": "failed", "class": "h100", "tenant": "acme"}): "1",
        _sel("DCGM_FI_DEV_GPU_UTIL", {**GPU, "cluster": "train"}): "100",
        _sel("DCGM_FI_DEV_GPU_UTIL", {**GPU, "gpu": "1", "cluster": "train"}): "50",
    }, exprs=[
        ("0m", "metalfleet:nodes:by_state", [('metalfleet:nodes:by_state{state="active"}', 4)]),
        ("0m", "metalfleet:nodes_unhealthy:count", [("metalfleet:nodes_unhealthy:count", 1)]),
        ("0m", "node:gpu_utilisation:avg", [('node:gpu_utilisation:avg{node="g1"}', 75)]),
        ("0m", "cluster:gpu_utilisation:avg",
         [('cluster:gpu_utilisation:avg{cluster="train"}', 75)]),
    ]),
]


def _expected(alertname: str, labels: dict[str, str], value: float) -> dict[str, Any]:
    alert = ALL_ALERTS[alertname]
    full = {**labels, "severity": alert.severity, "component": alert.component}
    return {
        "exp_labels": full,
        "exp_annotations": {"summary": render(alert.summary, full, value),
                            "description": render(alert.description, full, value)},
    }


def rules_test_file(rule_file: str = "rules.yml") -> dict[str, Any]:
    tests: list[dict[str, Any]] = []
    for case in CASES:
        test: dict[str, Any] = {
            "name": case.name,
            "interval": "1m",
            "input_series": [{"series": s, "values": v} for s, v in case.series.items()],
        }
        if case.alerts:
            test["alert_rule_test"] = [
                {"eval_time": at, "alertname": name,
                 "exp_alerts": [_expected(name, labels, value) for labels, value in expected]}
                for at, name, expected in case.alerts
            ]
        if case.exprs:
            test["promql_expr_test"] = [
                {"expr": expr, "eval_time": at,
                 "exp_samples": [{"labels": lab, "value": val} for lab, val in samples]}
                for at, expr, samples in case.exprs
            ]
        tests.append(test)
    return {"rule_files": [rule_file], "evaluation_interval": "1m", "tests": tests}
