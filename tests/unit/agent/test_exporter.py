"""The agent's exporter: its own output parsed back with prometheus_client's text parser."""

from __future__ import annotations

import json
import os
import sys
import types
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from metalfleet.agent import inventory
from metalfleet.agent.exporter import MetricsServer, collect
from metalfleet.agent.hardware_root import HardwareRoot
from metalfleet.agent.prom_text import Family, render
from metalfleet.lab.synthetic_hardware import build_root, cpu_node_spec, gpu_node_spec

Samples = dict[str, list[tuple[dict[str, str], float]]]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


def by_gpu(samples: Samples, name: str) -> dict[str, float]:
    return {labels["gpu"]: value for labels, value in samples.get(name, [])}


@pytest.fixture
def gpu_root(tmp_path: Path) -> Path:
    return build_root(tmp_path / "gpu", gpu_node_spec(0))


def _nvml(root: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / "run/metalfleet/nvml.json").read_text())
    return data


def _bus(root: Path, gpu: int) -> str:
    """The NVRM spelling of a GPU's PCI address: ``0000:18:00``."""
    return str(_nvml(root)["devices"][gpu]["pci_bus_id"]).lower()[4:].rsplit(".", 1)[0]


def test_lab_gpu_node_has_dcgm_metrics_per_gpu(gpu_root: Path) -> None:
    samples = parse(collect(HardwareRoot(gpu_root)))
    devices = _nvml(gpu_root)["devices"]
    xid = samples["DCGM_FI_DEV_XID_ERRORS"]
    assert sorted(labels["gpu"] for labels, _ in xid) == [str(i) for i in range(8)]
    first = next(labels for labels, _ in xid if labels["gpu"] == "0")
    assert first["UUID"] == devices[0]["uuid"] and first["modelName"] == devices[0]["name"]
    assert set(by_gpu(samples, "DCGM_FI_DEV_XID_ERRORS").values()) == {0}
    assert set(by_gpu(samples, "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL").values()) == {0}
    assert set(by_gpu(samples, "DCGM_FI_DEV_PCIE_LINK_WIDTH").values()) == {16}
    assert set(by_gpu(samples, "DCGM_FI_DEV_PCIE_LINK_GEN").values()) == {5}
    # unknown to the synthetic NVML: absent, not invented
    assert "DCGM_FI_DEV_GPU_TEMP" not in samples and "DCGM_FI_DEV_FB_USED" not in samples
    states = {labels["device"]: value for labels, value in samples["node_infiniband_state_id"]}
    assert states == {f"mlx5_{i}": 4 for i in range(8)}
    rates = {v for _, v in samples["node_infiniband_rate_bytes_per_second"]}
    assert rates == {400e9 / 8}
    assert samples["node_memory_MemTotal_bytes"][0][1] == 2048 * 1024**3


def test_xid_ecc_and_live_values_show_on_the_right_gpu(gpu_root: Path) -> None:
    kern = gpu_root / "var/log/kern.log"
    kern.write_text(kern.read_text() + (
        f"\nkernel: [  100.1] NVRM: Xid (PCI:{_bus(gpu_root, 3)}): 13, pid=1, Graphics Exception"
        f"\nkernel: [  200.2] NVRM: Xid (PCI:{_bus(gpu_root, 3)}): 79, pid=1, GPU has fallen "
        "off the bus.\n"))
    nvml = _nvml(gpu_root)
    nvml["devices"][1].update(ecc_uncorrected_volatile=2, temperature_c=91,
                              memory_used_mib=1000, utilization_gpu_pct=55)
    (gpu_root / "run/metalfleet/nvml.json").write_text(json.dumps(nvml))
    width = gpu_root / f"sys/bus/pci/devices/{nvml['devices'][2]['pci_bus_id'][4:].lower()}"
    (width / "current_link_width").write_text("8\n")

    samples = parse(collect(HardwareRoot(gpu_root)))
    xids = by_gpu(samples, "DCGM_FI_DEV_XID_ERRORS")
    assert xids["3"] == 79, "the last XID of that GPU"
    assert {gpu for gpu, value in xids.items() if value} == {"3"}
    dbe = by_gpu(samples, "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL")
    assert dbe["1"] == 2 and sum(dbe.values()) == 2
    assert by_gpu(samples, "DCGM_FI_DEV_GPU_TEMP") == {"1": 91}
    assert by_gpu(samples, "DCGM_FI_DEV_FB_USED") == {"1": 1000}
    assert by_gpu(samples, "DCGM_FI_DEV_FB_FREE") == {"1": 81559 - 1000}
    assert by_gpu(samples, "DCGM_FI_DEV_GPU_UTIL") == {"1": 55}
    assert by_gpu(samples, "DCGM_FI_DEV_PCIE_LINK_WIDTH")["2"] == 8


def test_infiniband_port_down_and_link_downed_counter(gpu_root: Path) -> None:
    port = gpu_root / "sys/class/infiniband/mlx5_2/ports/1"
    (port / "state").write_text("1: DOWN\n")
    (port / "phys_state").write_text("3: Disabled\n")
    (port / "counters").mkdir()
    (port / "counters/link_downed").write_text("3\n")
    samples = parse(collect(HardwareRoot(gpu_root)))
    states = {labels["device"]: value for labels, value in samples["node_infiniband_state_id"]}
    assert states["mlx5_2"] == 1 and states["mlx5_1"] == 4
    assert samples["node_infiniband_link_downed_total"] == [
        ({"device": "mlx5_2", "port": "1"}, 3.0)]


def test_cpu_node_has_no_gpu_metrics(tmp_path: Path) -> None:
    samples = parse(collect(HardwareRoot(build_root(tmp_path / "cpu", cpu_node_spec(3)))))
    assert not [name for name in samples if name.startswith("DCGM_")]
    assert "node_infiniband_state_id" not in samples
    assert {labels["device"] for labels, _ in samples["node_network_up"]} == {
        "ens1f0np0", "ens1f1np1"}


def test_network_error_counters(tmp_path: Path) -> None:
    root = build_root(tmp_path / "cpu", cpu_node_spec(3))
    stats = root / "sys/class/net/ens1f0np0/statistics"
    stats.mkdir()
    for name, value in (("rx_errors", 7), ("tx_errors", 1), ("rx_bytes", 10), ("tx_bytes", 20)):
        (stats / name).write_text(f"{value}\n")
    samples = parse(collect(HardwareRoot(root)))
    assert samples["node_network_receive_errs_total"] == [({"device": "ens1f0np0"}, 7.0)]
    assert samples["node_network_transmit_errs_total"] == [({"device": "ens1f0np0"}, 1.0)]


def test_this_machine_without_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # no NVML here: import fails
    monkeypatch.setattr(inventory, "NVML_JSON", "run/metalfleet/absent-for-test.json")
    samples = parse(collect(HardwareRoot("/")))
    assert not [name for name in samples if name.startswith("DCGM_")]
    assert samples["node_load1"][0][1] >= 0
    cpus = {labels["cpu"] for labels, _ in samples["node_cpu_seconds_total"]}
    assert len(cpus) == os.cpu_count()
    assert {labels["mode"] for labels, _ in samples["node_cpu_seconds_total"]} >= {"idle", "user"}
    mounts = {labels["mountpoint"] for labels, _ in samples["node_filesystem_size_bytes"]}
    assert "/" in mounts
    total = samples["node_memory_MemTotal_bytes"][0][1]
    assert 0 < samples["node_memory_MemAvailable_bytes"][0][1] <= total


class _NotSupported(Exception):
    pass


def _fake_pynvml() -> types.ModuleType:
    module = types.ModuleType("pynvml")
    handles = ["h0", "h1"]

    def not_supported(*_args: Any) -> Any:
        raise _NotSupported("NVML_ERROR_NOT_SUPPORTED")

    def ecc(handle: str, kind: int, _counter: int) -> int:
        if handle == "h1":
            raise _NotSupported("ECC off")
        return 5 if kind == 1 else 0

    def nvlink(handle: str, link: int, counter: int) -> int:
        if link >= 2:
            raise _NotSupported("past the last link")
        return counter * 10

    values: dict[str, Any] = {
        "nvmlInit": lambda: None, "nvmlShutdown": lambda: None,
        "nvmlDeviceGetCount": lambda: 2,
        "nvmlDeviceGetHandleByIndex": lambda index: handles[index],
        "nvmlDeviceGetName": lambda h: b"NVIDIA H200",
        "nvmlDeviceGetUUID": lambda h: f"GPU-{h}",
        "nvmlDeviceGetPciInfo": lambda h: types.SimpleNamespace(
            busId=f"00000000:{18 + handles.index(h):02X}:00.0"),
        "nvmlDeviceGetMemoryInfo": lambda h: types.SimpleNamespace(
            total=141 * 1024**3, used=2 * 1024**3),
        "nvmlDeviceGetUtilizationRates": lambda h: types.SimpleNamespace(gpu=42),
        "nvmlDeviceGetTemperature": lambda h, _sensor: 60,
        "nvmlDeviceGetPowerUsage": lambda h: 350500,
        "nvmlDeviceGetTotalEccErrors": ecc,
        "nvmlDeviceGetRetiredPages": lambda h, cause: [1, 2] if cause == 1 else [],
        "nvmlDeviceGetRemappedRows": lambda h: (3, 1, 0, 0),
        "nvmlDeviceGetCurrentClocksThrottleReasons": not_supported,
        "nvmlDeviceGetCurrPcieLinkWidth": lambda h: 16,
        "nvmlDeviceGetCurrPcieLinkGeneration": lambda h: 5,
        "nvmlDeviceGetNvLinkErrorCounter": nvlink,
        "nvmlDeviceGetNvLinkState": lambda h, link: 1 if link < 2 else not_supported(h),
        "NVML_TEMPERATURE_GPU": 0, "NVML_VOLATILE_ECC": 0,
        "NVML_MEMORY_ERROR_TYPE_CORRECTED": 0, "NVML_MEMORY_ERROR_TYPE_UNCORRECTED": 1,
        "NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS": 0,
        "NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR": 1,
        "NVML_NVLINK_ERROR_DL_CRC_FLIT": 2, "NVML_NVLINK_ERROR_DL_CRC_DATA": 3,
        "NVML_NVLINK_MAX_LINKS": 18,
    }
    for name, value in values.items():
        setattr(module, name, value)
    return module


def test_live_nvml_through_pynvml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml())
    monkeypatch.setattr(inventory, "NVML_JSON", "run/metalfleet/absent-for-test.json")
    samples = parse(collect(HardwareRoot("/")))
    assert by_gpu(samples, "DCGM_FI_DEV_GPU_UTIL") == {"0": 42, "1": 42}
    assert by_gpu(samples, "DCGM_FI_DEV_POWER_USAGE") == {"0": 350.5, "1": 350.5}
    assert by_gpu(samples, "DCGM_FI_DEV_FB_USED") == {"0": 2048, "1": 2048}
    assert by_gpu(samples, "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL") == {"0": 5}, "GPU 1: ECC off"
    assert by_gpu(samples, "DCGM_FI_DEV_RETIRED_DBE") == {"0": 2, "1": 2}
    assert by_gpu(samples, "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS") == {"0": 1, "1": 1}
    assert by_gpu(samples, "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL") == {"0": 40,
                                                                                "1": 40}
    assert "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS" not in samples, "not supported: left out"
    assert by_gpu(samples, "DCGM_FI_DEV_XID_ERRORS") == {"0": 0, "1": 0}
    labels = samples["DCGM_FI_DEV_GPU_UTIL"][1][0]
    assert labels == {"gpu": "1", "UUID": "GPU-h1", "modelName": "NVIDIA H200",
                      "pci_bus_id": "00000000:13:00.0"}


def test_check_findings_become_metalfleet_check_failed(gpu_root: Path) -> None:
    findings = [
        {"check": "gpu-xid", "component": "GPU3", "severity": "critical", "message": "Xid 79",
         "evidence": {}},
        {"check": "disk-smart", "component": "nvme0n1", "severity": "warning", "message": "",
         "evidence": {}},
    ]
    samples = parse(collect(HardwareRoot(gpu_root), findings=findings,
                            checks_run=["gpu-xid", "disk-smart", "edac"], last_run=1700000000.5))
    assert sorted(labels.items() for labels, _ in samples["metalfleet_check_failed"]) == sorted([
        {"check": "gpu-xid", "component": "GPU3", "severity": "critical"}.items(),
        {"check": "disk-smart", "component": "nvme0n1", "severity": "warning"}.items()])
    assert {labels["check"] for labels, _ in samples["metalfleet_check_run"]} == {
        "gpu-xid", "disk-smart", "edac"}
    assert samples["metalfleet_checks_last_run_timestamp_seconds"] == [({}, 1700000000.5)]


def test_render_escapes_label_values() -> None:
    family = Family("metalfleet_check_failed", "help", "gauge")
    family.add(1, check='we"ird', component="a\\b\nc", severity="warning")
    family.add(None, check="skipped")
    empty = Family("nothing_here", "left out")
    samples = parse(render([family, empty]))
    assert samples == {"metalfleet_check_failed": [
        ({"check": 'we"ird', "component": "a\\b\nc", "severity": "warning"}, 1.0)]}


def test_metrics_server_answers_resolves_and_404s() -> None:
    def resolve(path: str) -> str | None:
        if path == "/broken":
            raise RuntimeError("boom")
        return "up_test 1\n" if path == "/metrics" else None

    with MetricsServer(resolve, host="127.0.0.1", port=0) as server:
        with urllib.request.urlopen(f"{server.url}/metrics?x=1", timeout=5) as response:
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            assert parse(response.read().decode()) == {"up_test": [({}, 1.0)]}
        for path, status in (("/nope", 404), ("/broken", 500)):
            with pytest.raises(urllib.error.HTTPError) as info:
                urllib.request.urlopen(f"{server.url}{path}", timeout=5)
            assert info.value.code == status


def test_exporter_and_monitor_need_only_the_standard_library() -> None:
    """They run on deployed nodes: importable with no site-packages at all (python -S)."""
    import subprocess

    src = Path(__file__).resolve().parents[3] / "src"
    code = ("import sys, metalfleet.agent.monitor, metalfleet.agent.exporter,"
            " metalfleet.agent.main, metalfleet.agent.health;"
            " print(sorted(m for m in sys.modules if m.split('.')[0] in"
            " ('prometheus_client', 'sqlalchemy', 'fastapi', 'pydantic')))")
    done = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": str(src)}, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
