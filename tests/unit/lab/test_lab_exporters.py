"""The lab's shared exporter: one server, a metrics path per lab node's synthetic root."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from metalfleet.lab.exporters import LabExporters, start_lab_exporters
from metalfleet.lab.synthetic_hardware import build_root, cpu_node_spec, gpu_node_spec


def _get(url: str) -> dict[str, list[dict[str, str]]]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {f.name: [dict(s.labels) for s in f.samples]
            for f in text_string_to_metric_families(text)}


def test_one_server_serves_every_lab_node_with_its_check_findings(tmp_path: Path) -> None:
    roots = tmp_path / "nodes"
    gpu = build_root(roots / "lab-gpu-01", gpu_node_spec(0))
    build_root(roots / "lab-cpu-01", cpu_node_spec(3))
    smart = gpu / "run/metalfleet/smart/nvme0n1.json"
    report = json.loads(smart.read_text())
    report["smart_status"] = {"passed": False}
    smart.write_text(json.dumps(report))
    nvml_file = gpu / "run/metalfleet/nvml.json"
    nvml = json.loads(nvml_file.read_text())
    nvml["devices"] = nvml["devices"][:7]  # GPU7 fell off: NVML no longer lists it
    nvml_file.write_text(json.dumps(nvml))
    exporters = LabExporters(roots)
    try:
        base = f"http://{exporters.address}"
        gpu_metrics = _get(f"{base}/nodes/lab-gpu-01/metrics")
        assert len(gpu_metrics["DCGM_FI_DEV_XID_ERRORS"]) == 7
        failed = {s["check"] for s in gpu_metrics["metalfleet_check_failed"]}
        assert failed == {"disk-smart", "gpu-missing"}, "checked against the lab's spec"
        assert "gpu-xid" in {s["check"] for s in gpu_metrics["metalfleet_check_run"]}
        cpu_metrics = _get(f"{base}/nodes/lab-cpu-01/metrics")
        assert "DCGM_FI_DEV_XID_ERRORS" not in cpu_metrics
        assert "metalfleet_check_failed" not in cpu_metrics
        for path in ("/nodes/lab-gpu-99/metrics", "/nodes/../metrics", "/nodes/..%2f/metrics",
                     "/metrics", "/nodes/lab-gpu-01/other"):
            with pytest.raises(urllib.error.HTTPError) as info:
                urllib.request.urlopen(f"{base}{path}", timeout=10)
            assert info.value.code == 404, path
    finally:
        exporters.stop()


def test_the_port_is_kept_across_restarts(tmp_path: Path) -> None:
    first = start_lab_exporters(tmp_path)
    port = first.port
    first.stop()
    second = start_lab_exporters(tmp_path)
    try:
        assert second.port == port
        assert json.loads((tmp_path / "lab/lab.json").read_text())["exporter_port"] == port
    finally:
        second.stop()
