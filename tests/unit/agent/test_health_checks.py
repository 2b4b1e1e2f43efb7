"""The agent's in-band health checks against synthetic roots (and the real host)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from metalfleet.agent import health
from metalfleet.agent.hardware_root import HardwareRoot
from metalfleet.agent.health import CHECKS, parse_xids, run_checks
from metalfleet.agent.inventory import collect_inventory
from metalfleet.lab.synthetic_hardware import build_root, cpu_node_spec, gpu_node_spec


@pytest.fixture
def gpu_root(tmp_path: Path) -> Path:
    return build_root(tmp_path / "gpu", gpu_node_spec(3))


@pytest.fixture
def expected(gpu_root: Path) -> dict[str, Any]:
    return collect_inventory(HardwareRoot(gpu_root))


def _findings(root: Path, expected: dict[str, Any] | None = None,
              check: str | None = None) -> list[dict[str, Any]]:
    report = run_checks(HardwareRoot(root), expected)
    return [f for f in report.findings if check is None or f["check"] == check]


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text() + line + "\n")


def _edit_nvml(root: Path, index: int, **fields: Any) -> None:
    path = root / "run/metalfleet/nvml.json"
    data = json.loads(path.read_text())
    for device in data["devices"]:
        if device["index"] == index:
            device.update(fields)
    path.write_text(json.dumps(data))


def test_a_healthy_gpu_node_runs_every_check_and_finds_nothing(
        gpu_root: Path, expected: dict[str, Any]) -> None:
    report = run_checks(HardwareRoot(gpu_root), expected)
    assert report.findings == []
    assert sorted(report.checks_run) == sorted(CHECKS)
    assert report.not_applicable == []


def test_a_cpu_node_reports_gpu_and_ib_checks_not_applicable(tmp_path: Path) -> None:
    root = build_root(tmp_path / "cpu", cpu_node_spec(1))
    report = run_checks(HardwareRoot(root), collect_inventory(HardwareRoot(root)))
    assert report.findings == []
    assert set(report.not_applicable) == {"gpu-xid", "gpu-ecc", "gpu-missing", "gpu-throttle",
                                          "ib-link-down", "pcie-width"}
    assert set(report.checks_run) == {"disk-smart", "edac"}
    assert report.reasons["gpu-xid"] == "no GPU on this node"


def test_the_real_host_does_not_crash_and_has_no_gpu_or_ib_checks() -> None:
    report = run_checks(HardwareRoot("/"))
    assert {"gpu-xid", "gpu-ecc", "gpu-missing", "ib-link-down"} <= set(report.not_applicable)
    assert set(report.checks_run) | set(report.not_applicable) == set(CHECKS)
    for finding in report.findings:  # whatever the host has, it is in the engine's shape
        assert set(finding) == {"check", "component", "severity", "message", "evidence"}


def test_fatal_xid_since_boot_is_critical_on_the_right_gpu(
        gpu_root: Path, expected: dict[str, Any]) -> None:
    gpu2 = expected["gpus"][2]["pci_bus_id"]  # "0000:1c:00.0"
    _append(gpu_root / "var/log/kern.log",
            f"Dec  1 05:00:01 n kernel: [ 5000.1] NVRM: Xid (PCI:{gpu2[:-2]}): 79, "
            "pid='<unknown>', name=<unknown>, GPU has fallen off the bus.")
    [finding] = _findings(gpu_root, expected, "gpu-xid")
    assert finding["component"] == "GPU2" and finding["severity"] == "critical"
    assert finding["evidence"]["xids"] == [79] and finding["evidence"]["pci_bus_id"] == gpu2
    assert "fallen off the bus" in finding["message"]


def test_xids_before_the_last_boot_are_forgotten(gpu_root: Path, expected: dict[str, Any]) -> None:
    log = gpu_root / "var/log/kern.log"
    _append(log, "kernel: [ 50.0] NVRM: Xid (PCI:0000:18:00): 48, pid=1, DBE")
    assert _findings(gpu_root, expected, "gpu-xid")
    _append(log, "kernel: [    0.000000] Linux version 5.15.0-lab (metalfleet lab) #1 SMP")
    assert _findings(gpu_root, expected, "gpu-xid") == []


def test_application_xids_are_warnings_that_expire(gpu_root: Path,
                                                   expected: dict[str, Any]) -> None:
    (gpu_root / "proc/uptime").write_text("10000.00 80000.00\n")
    log = gpu_root / "var/log/kern.log"
    _append(log, "kernel: [ 100.0] NVRM: Xid (PCI:0000:18:00): 13, Graphics Exception")
    assert _findings(gpu_root, expected, "gpu-xid") == [], "an hour-old Xid 13 is not news"
    _append(log, "kernel: [ 9990.0] NVRM: Xid (PCI:0000:18:00): 31, MMU Fault")
    [finding] = _findings(gpu_root, expected, "gpu-xid")
    assert finding["severity"] == "warning" and finding["evidence"]["xids"] == [31]


def test_parse_xids_reads_driver_formats() -> None:
    text = ("[ 12.5] NVRM: Xid (PCI:0000:3b:00): 119, pid=2, Timeout waiting for RPC from GSP!\n"
            "Dec 1 host kernel: NVRM: Xid (PCI:0000:3B:00.0): 94, Contained ECC error\n"
            "unrelated line\n")
    xids = parse_xids(text)
    assert [(x["xid"], x["pci_bus_id"], x["uptime_s"]) for x in xids] == [
        (119, "0000:3b:00.0", 12.5), (94, "0000:3b:00.0", None)]


def test_gpu_ecc_uncorrectable_is_critical_and_pending_remap_a_warning(
        gpu_root: Path, expected: dict[str, Any]) -> None:
    _edit_nvml(gpu_root, 5, remap_pending=True)
    [warning] = _findings(gpu_root, expected, "gpu-ecc")
    assert (warning["component"], warning["severity"]) == ("GPU5", "warning")
    _edit_nvml(gpu_root, 5, ecc_uncorrected_volatile=3)
    [critical] = _findings(gpu_root, expected, "gpu-ecc")
    assert critical["severity"] == "critical"
    assert critical["evidence"]["ecc_uncorrected_volatile"] == 3


def test_a_gpu_gone_from_nvml_is_missing_by_name(gpu_root: Path,
                                                 expected: dict[str, Any]) -> None:
    path = gpu_root / "run/metalfleet/nvml.json"
    data = json.loads(path.read_text())
    data["devices"] = [d for d in data["devices"] if d["index"] != 6]
    path.write_text(json.dumps(data))
    [finding] = _findings(gpu_root, expected, "gpu-missing")
    assert finding["component"] == "GPU6" and finding["severity"] == "critical"
    assert finding["evidence"]["visible"] == 7 and finding["evidence"]["expected"] == 8
    # without the inventory the check cannot know: not applicable, not "fine"
    assert "gpu-missing" in run_checks(HardwareRoot(gpu_root)).not_applicable
    # a count alone (the node class) also works, as one node-level finding
    [counted] = _findings(gpu_root, {"gpu_count": 8}, "gpu-missing")
    assert counted["component"] == "" and "7 of 8" in counted["message"]


def test_a_narrowed_pcie_link_is_a_warning(gpu_root: Path, expected: dict[str, Any]) -> None:
    bus = expected["gpus"][1]["pci_bus_id"]
    (gpu_root / f"sys/bus/pci/devices/{bus}/current_link_width").write_text("8\n")
    [finding] = _findings(gpu_root, expected, "pcie-width")
    assert finding["component"] == "GPU1" and finding["severity"] == "warning"
    assert (finding["evidence"]["current_width"], finding["evidence"]["max_width"]) == (8, 16)


def test_ib_port_down_and_gone(gpu_root: Path, expected: dict[str, Any]) -> None:
    (gpu_root / "sys/class/infiniband/mlx5_4/ports/1/state").write_text("1: DOWN\n")
    [down] = _findings(gpu_root, expected, "ib-link-down")
    assert down["component"] == "mlx5_4" and down["evidence"]["state"] == "DOWN"
    (gpu_root / "sys/class/infiniband/mlx5_4/ports/1/state").write_text("4: ACTIVE\n")
    import shutil
    shutil.rmtree(gpu_root / "sys/class/infiniband/mlx5_7")
    [gone] = _findings(gpu_root, expected, "ib-link-down")
    assert gone["component"] == "mlx5_7" and gone["evidence"]["present"] == 7


def test_smart_failed_nvme_and_ata_pending_sectors(gpu_root: Path,
                                                   expected: dict[str, Any]) -> None:
    path = gpu_root / "run/metalfleet/smart/nvme0n1.json"
    data = json.loads(path.read_text())
    data["nvme_smart_health_information_log"]["critical_warning"] = 0x08
    path.write_text(json.dumps(data))
    [finding] = _findings(gpu_root, expected, "disk-smart")
    assert finding["severity"] == "critical" and "read-only" in finding["message"]
    ata = {"smart_status": {"passed": True}, "ata_smart_attributes": {"table": [
        {"id": 197, "name": "Current_Pending_Sector", "raw": {"value": 4}}]}}
    path.write_text(json.dumps(ata))
    [pending] = _findings(gpu_root, expected, "disk-smart")
    assert pending["severity"] == "warning" and "Current_Pending_Sector = 4" in pending["message"]


def test_edac_uncorrectable_errors_name_the_dimm(gpu_root: Path,
                                                 expected: dict[str, Any]) -> None:
    mc = gpu_root / "sys/devices/system/edac/mc/mc1"
    (mc / "ue_count").write_text("2\n")
    (mc / "dimm3").mkdir()
    (mc / "dimm3/dimm_ue_count").write_text("2\n")
    (mc / "dimm3/dimm_label").write_text("CPU1_DIMM_C1\n")
    [finding] = _findings(gpu_root, expected, "edac")
    assert finding["component"] == "mc1" and finding["severity"] == "critical"
    assert finding["evidence"]["dimms"] == {"CPU1_DIMM_C1": 2}


def test_a_broken_check_is_reported_and_does_not_hide_the_others(
        gpu_root: Path, expected: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(ctx: Any) -> None:
        raise RuntimeError("sysfs went away")

    monkeypatch.setitem(health._OTHER_CHECKS, "edac", boom)
    report = run_checks(HardwareRoot(gpu_root), expected)
    assert "edac" in report.not_applicable and "sysfs went away" in report.reasons["edac"]
    assert len(report.checks_run) == len(CHECKS) - 1


class _NvmlError(Exception):
    pass


def _fake_pynvml() -> types.ModuleType:
    """Two GPUs as NVML shows them; GPU1 has uncorrectable ECC errors, GPU0 no row remapping."""
    module = types.ModuleType("pynvml")
    values: dict[str, Any] = {
        "NVML_MEMORY_ERROR_TYPE_UNCORRECTED": 1, "NVML_MEMORY_ERROR_TYPE_CORRECTED": 0,
        "NVML_VOLATILE_ECC": 0, "NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR": 1,
        "nvmlInit": lambda: None, "nvmlShutdown": lambda: None,
        "nvmlDeviceGetCount": lambda: 2,
        "nvmlDeviceGetHandleByIndex": lambda index: index,
        "nvmlDeviceGetPciInfo": lambda h: types.SimpleNamespace(
            busId=f"00000000:{0x18 + h:02X}:00.0".encode()),
        "nvmlDeviceGetTotalEccErrors": lambda h, kind, counter: 3 if h == 1 and kind else 0,
        "nvmlDeviceGetRetiredPages": lambda h, cause: [],
        "nvmlDeviceGetRetiredPagesPendingStatus": lambda h: 0,
    }

    def remapped(handle: int) -> tuple[int, int, int, int]:
        if handle == 0:
            raise _NvmlError("NVML_ERROR_NOT_SUPPORTED")
        return (0, 1, 0, 0)

    values["nvmlDeviceGetRemappedRows"] = remapped
    for name, value in values.items():
        setattr(module, name, value)
    return module


def test_the_host_path_reads_live_nvml_and_journalctl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml())
    asked: list[list[str]] = []

    def run(argv: list[str]) -> str | None:
        asked.append(argv)
        if argv[0] == "journalctl":
            return ("[ 7.0] host kernel: Linux version 6.8.0\n"
                    "[ 812.5] host kernel: NVRM: Xid (PCI:0000:19:00): 94, pid=1, Contained\n")
        return None

    monkeypatch.setattr(health, "KERN_LOG", "var/log/metalfleet-test-absent.log")  # journald
    root = HardwareRoot("/")
    report = run_checks(root, {"gpu_count": 2}, run=run)
    by_check = {f["check"]: f for f in report.findings}
    assert by_check["gpu-ecc"]["component"] == "GPU1"
    assert by_check["gpu-ecc"]["evidence"]["ecc_uncorrected_volatile"] == 3
    assert by_check["gpu-xid"]["component"] == "GPU1", "bus 0x19 is NVML's GPU1"
    assert "gpu-missing" in report.checks_run and "gpu-missing" not in by_check
    assert any(argv[0] == "journalctl" for argv in asked)
