"""Grafana dashboards (fleet overview, node, GPU) as Python data, exported as JSON files.

They use a datasource variable ``DS`` (type prometheus) so they import into any Grafana, and the
``node`` variable comes from the labels the service discovery puts on every target.
"""

from __future__ import annotations

from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "${DS}"}


def _panel(panel_id: int, title: str, exprs: list[tuple[str, str]], *, kind: str = "timeseries",
           unit: str = "short", x: int = 0, y: int = 0, w: int = 12, h: int = 8) -> dict[str, Any]:
    return {
        "id": panel_id, "type": kind, "title": title, "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr,
             "legendFormat": legend}
            for i, (expr, legend) in enumerate(exprs)
        ],
    }


def _layout(specs: list[tuple[str, list[tuple[str, str]], str, str]]) -> list[dict[str, Any]]:
    panels = []
    for i, (title, exprs, kind, unit) in enumerate(specs):
        width = 6 if kind == "stat" else 12
        per_row = 24 // width
        panels.append(_panel(i + 1, title, exprs, kind=kind, unit=unit,
                             x=(i % per_row) * width, y=(i // per_row) * 8, w=width))
    return panels


def _variables(names: list[str]) -> dict[str, Any]:
    items: list[dict[str, Any]] = [{
        "name": "DS", "type": "datasource", "query": "prometheus", "label": "Prometheus",
        "hide": 0, "current": {},
    }]
    for name in names:
        query = "label_values(up, node)" if name == "node" else \
            'label_values(DCGM_FI_DEV_GPU_TEMP{node="$node"}, gpu)'
        items.append({"name": name, "type": "query", "datasource": DATASOURCE,
                      "query": {"query": query, "refId": name}, "definition": query,
                      "refresh": 2, "includeAll": name == "gpu", "multi": name == "gpu",
                      "current": {}, "hide": 0})
    return {"list": items}


def _dashboard(uid: str, title: str, panels: list[dict[str, Any]],
               variables: list[str]) -> dict[str, Any]:
    return {
        "uid": uid, "title": title, "tags": ["metalfleet"], "timezone": "utc",
        "schemaVersion": 38, "version": 1, "editable": True, "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": _variables(variables), "annotations": {"list": []},
        "panels": panels,
    }


N = 'node="$node"'
G = 'node="$node", gpu=~"$gpu"'


def fleet() -> dict[str, Any]:
    return _dashboard("metalfleet-fleet", "metalfleet / Fleet overview", _layout([
        ("Nodes", [("sum(metalfleet_nodes)", "nodes")], "stat", "short"),
        ("Unhealthy nodes", [("metalfleet:nodes_unhealthy:count", "unhealthy")], "stat",
         "short"),
        ("In maintenance", [("metalfleet_nodes_maintenance", "maintenance")], "stat", "short"),
        ("Conductors alive", [("metalfleet_conductors_alive", "conductors")], "stat", "short"),
        ("Nodes by state", [("sum by (state) (metalfleet_nodes)", "{{state}}")], "timeseries",
         "short"),
        ("Nodes by class and health",
         [("sum by (class, health) (metalfleet_nodes)", "{{class}} {{health}}")], "timeseries",
         "short"),
        ("BMC errors", [("metalfleet_nodes_bmc_errors", "{{kind}}")], "timeseries", "short"),
        ("Firing alerts", [('sum by (alertname) (ALERTS{alertstate="firing"})',
                            "{{alertname}}")], "timeseries", "short"),
        ("GPU utilisation by cluster", [("cluster:gpu_utilisation:avg", "{{cluster}}")],
         "timeseries", "percent"),
        ("Exporters down", [('count by (role) (up{node!=""} == 0)', "{{role}}")], "timeseries",
         "short"),
    ]), [])


def node() -> dict[str, Any]:
    fs = 'fstype!~"tmpfs|ramfs|overlay|squashfs"'
    return _dashboard("metalfleet-node", "metalfleet / Node", _layout([
        ("Up", [(f"up{{{N}}}", "{{role}}")], "stat", "short"),
        ("CPU utilisation", [(f"node:cpu_utilisation:ratio{{{N}}}", "cpu")], "stat",
         "percentunit"),
        ("Memory utilisation", [(f"node:memory_utilisation:ratio{{{N}}}", "memory")], "stat",
         "percentunit"),
        ("GPU temperature (max)", [(f"node:gpu_temp:max{{{N}}}", "max")], "stat", "celsius"),
        ("Load", [(f"node_load1{{{N}}}", "1m"), (f"node_load5{{{N}}}", "5m")], "timeseries",
         "short"),
        ("Filesystem free",
         [(f"node_filesystem_avail_bytes{{{N}, {fs}}} / node_filesystem_size_bytes{{{N}, {fs}}}",
           "{{mountpoint}}")], "timeseries", "percentunit"),
        ("Network traffic",
         [(f"rate(node_network_receive_bytes_total{{{N}}}[$__rate_interval])", "rx {{device}}"),
          (f"rate(node_network_transmit_bytes_total{{{N}}}[$__rate_interval])",
           "tx {{device}}")], "timeseries", "Bps"),
        ("Network errors",
         [(f"rate(node_network_receive_errs_total{{{N}}}[$__rate_interval])", "rx {{device}}"),
          (f"rate(node_network_transmit_errs_total{{{N}}}[$__rate_interval])",
           "tx {{device}}")], "timeseries", "short"),
        ("InfiniBand link downs",
         [(f"increase(node_infiniband_link_downed_total{{{N}}}[$__rate_interval])",
           "{{device}}/{{port}}")], "timeseries", "short"),
        ("Alerts on this node", [(f'ALERTS{{{N}, alertstate="firing"}}', "{{alertname}}")],
         "timeseries", "short"),
    ]), ["node"])


def gpu() -> dict[str, Any]:
    return _dashboard("metalfleet-gpu", "metalfleet / GPU", _layout([
        ("Utilisation", [(f"DCGM_FI_DEV_GPU_UTIL{{{G}}}", "GPU {{gpu}}")], "timeseries",
         "percent"),
        ("Memory used", [(f"DCGM_FI_DEV_FB_USED{{{G}}}", "GPU {{gpu}}")], "timeseries",
         "decmbytes"),
        ("Temperature", [(f"DCGM_FI_DEV_GPU_TEMP{{{G}}}", "GPU {{gpu}}")], "timeseries",
         "celsius"),
        ("Power", [(f"DCGM_FI_DEV_POWER_USAGE{{{G}}}", "GPU {{gpu}}")], "timeseries", "watt"),
        ("Last XID", [(f"DCGM_FI_DEV_XID_ERRORS{{{G}}}", "GPU {{gpu}}")], "timeseries",
         "short"),
        ("ECC double-bit errors (volatile)",
         [(f"DCGM_FI_DEV_ECC_DBE_VOL_TOTAL{{{G}}}", "GPU {{gpu}}")], "timeseries", "short"),
        ("PCIe link width", [(f"DCGM_FI_DEV_PCIE_LINK_WIDTH{{{G}}}", "GPU {{gpu}}")],
         "timeseries", "short"),
        ("Clock throttle reasons",
         [(f"DCGM_FI_DEV_CLOCK_THROTTLE_REASONS{{{G}}}", "GPU {{gpu}}")], "timeseries",
         "short"),
    ]), ["node", "gpu"])


DASHBOARDS = {"fleet": fleet, "node": node, "gpu": gpu}
