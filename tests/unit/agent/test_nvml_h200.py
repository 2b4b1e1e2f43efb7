"""The agent's GPU paths against answers recorded on a real NVIDIA H200 (driver 580.159.04,
nvidia-ml-py 13.610.43), replayed: inventory, NVML reader, health checks and exporter must
agree with the nvidia-smi -q -x the same machine printed in the same run."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest

from metalfleet.agent import gpu_metrics, health, inventory, nvidia_smi, nvml
from metalfleet.agent.hardware_root import HardwareRoot
from metalfleet.agent.prom_text import render
from metalfleet.health.acceptance_plan import known_gpu_spec
from tests.unit.agent.nvml_replay import ReplayNvml, load_recording, nvidia_smi_xml

STATIC = ("name", "uuid", "vbios_version", "pci_bus_id", "pci_device_id", "memory_total_mib",
          "memory_reserved_mib", "ecc_enabled", "ecc_pending_enabled",
          "remapped_rows_correctable", "remapped_rows_uncorrectable", "remap_pending",
          "remap_failure", "power_limit_w", "clock_graphics_max_mhz", "clock_sm_max_mhz",
          "clock_memory_max_mhz", "pcie_link_width", "pcie_link_width_max",
          "pcie_link_gen_max", "mig_enabled", "ecc_corrected_volatile",
          "ecc_uncorrected_volatile")


@pytest.fixture
def replay() -> ReplayNvml:
    return ReplayNvml(load_recording("h200"))


@pytest.fixture
def smi() -> dict[str, Any]:
    return nvidia_smi.parse(nvidia_smi_xml("h200"))


@pytest.fixture
def host_nvml(replay: ReplayNvml, monkeypatch: pytest.MonkeyPatch) -> ReplayNvml:
    """The host root's NVML is the replay; no lab json, no kern.log, no journald."""
    monkeypatch.setattr(nvml, "load", lambda: replay)
    monkeypatch.setattr(inventory, "NVML_JSON", "run/metalfleet/absent-for-test.json")
    monkeypatch.setattr(health, "KERN_LOG", "var/log/metalfleet-test-absent.log")
    return replay


def test_the_nvml_reader_answers_every_field_nvidia_smi_shows(
        replay: ReplayNvml, smi: dict[str, Any]) -> None:
    answers = nvml.read_nvml(replay)
    assert answers is not None and replay.missed == []
    assert answers["driver_version"] == smi["driver_version"] == "580.159.04"
    assert answers["cuda_version"] == smi["cuda_version"] == "13.0"
    ours, theirs = answers["devices"][0], smi["devices"][0]
    for field in STATIC:
        assert ours[field] == theirs[field], field
    assert ours["name"] == "NVIDIA H200" and ours["memory_total_mib"] == 143771


def test_memory_used_excludes_the_driver_reservation(replay: ReplayNvml,
                                                     smi: dict[str, Any]) -> None:
    """NVML v1 says 615 MiB used on an idle H200; nvidia-smi says 0 used, 616 reserved."""
    device = nvml.read_nvml(replay)["devices"][0]  # type: ignore[index]
    assert device["memory_used_mib"] == smi["devices"][0]["memory_used_mib"] == 0
    assert device["memory_reserved_mib"] == 616, "rounded up, as nvidia-smi prints it"
    v1 = replay.nvmlDeviceGetMemoryInfo(replay.nvmlDeviceGetHandleByIndex(0))
    assert nvml.mib(v1.used) == 616, "v1 counts the reservation as used"


def test_what_an_h200_does_not_support_is_left_out(replay: ReplayNvml) -> None:
    device = nvml.read_nvml(replay)["devices"][0]  # type: ignore[index]
    # Hopper remaps rows instead of retiring pages; a PCIe-attached H200 has no NVLink.
    for absent in ("retired_pages_sbe", "retired_pages_dbe", "retired_pages_pending",
                   "nvlink_crc_flit_errors", "nvlink_crc_data_errors"):
        assert absent not in device
    assert device["nvlink_active_links"] == 0


def test_inventory_keeps_identity_and_slow_facts(host_nvml: ReplayNvml,
                                                 smi: dict[str, Any]) -> None:
    gpus, driver = inventory._gpus(HardwareRoot("/"))
    assert driver == {"driver_version": "580.159.04", "cuda_version": "13.0"}
    (gpu,) = gpus
    theirs = smi["devices"][0]
    assert gpu["memory_mib"] == theirs["memory_total_mib"]
    assert gpu["pci_bus_id"] == health.sysfs_bus_id(theirs["pci_bus_id"]) == "0000:00:06.0"
    assert gpu["ecc_enabled"] is True and gpu["power_limit_w"] == 700.0
    assert gpu["clock_sm_max_mhz"] == 1980 and gpu["pcie_link_gen_max"] == 5
    assert "power_w" not in gpu and "clock_sm_mhz" not in gpu, "readings are not inventory"
    assert host_nvml.missed == []


def test_health_checks_pass_on_the_healthy_h200(host_nvml: ReplayNvml,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    dmesg = ("[    0.582526] NVRM: loading NVIDIA UNIX Open Kernel Module for x86_64  "
             "580.159.04  Release Build  (nixbld@)\n"
             "[    3.735772] NVRM: Persistence mode is deprecated and will be removed in a "
             "future release. Please use nvidia-persistenced instead.\n")
    asked: list[list[str]] = []
    monkeypatch.setattr(shutil, "which", lambda tool: "/bin/dmesg" if tool == "dmesg" else None)

    def run(argv: list[str]) -> str | None:
        asked.append(argv)
        return dmesg if argv[0] == "dmesg" else None

    report = health.run_checks(HardwareRoot("/"), {"gpu_count": 1}, run=run)
    gpu_findings = [f for f in report.findings if f["check"].startswith("gpu-")
                    or f["check"] == "pcie-width"]
    assert gpu_findings == []
    for check in ("gpu-xid", "gpu-ecc", "gpu-missing", "gpu-throttle", "pcie-width"):
        assert check in report.checks_run, check
    assert ["dmesg", "--kernel"] in asked, "no kern.log, no journald: the ring buffer"


def test_a_hardware_slowdown_is_a_throttle_finding(host_nvml: ReplayNvml,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    hot = host_nvml.patched("nvmlDeviceGetCurrentClocksEventReasons", 0x44)  # +sw power cap
    monkeypatch.setattr(nvml, "load", lambda: hot)
    report = health.run_checks(HardwareRoot("/"), {"gpu_count": 1}, run=lambda argv: None)
    (finding,) = [f for f in report.findings if f["check"] == "gpu-throttle"]
    assert finding["component"] == "GPU0" and finding["severity"] == "warning"
    assert "hardware thermal slowdown" in finding["message"]
    assert "power" not in finding["message"].split(";")[0], "the software power cap is normal"
    assert finding["evidence"]["clocks_throttle_reasons"] == "0x44"


def test_a_narrow_link_is_read_from_nvml_not_the_vm_sysfs(
        host_nvml: ReplayNvml, monkeypatch: pytest.MonkeyPatch) -> None:
    narrow = host_nvml.patched("nvmlDeviceGetCurrPcieLinkWidth", 8)
    monkeypatch.setattr(nvml, "load", lambda: narrow)
    report = health.run_checks(HardwareRoot("/"), {"gpu_count": 1}, run=lambda argv: None)
    (finding,) = [f for f in report.findings if f["check"] == "pcie-width"]
    assert finding["component"] == "GPU0"
    assert finding["evidence"]["current_width"] == 8 and finding["evidence"]["source"] == "nvml"


def test_the_exporter_agrees_with_nvidia_smi(host_nvml: ReplayNvml, smi: dict[str, Any],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "run_command", lambda argv: None)
    monkeypatch.setattr(gpu_metrics, "run_command", lambda argv: None)
    text = render(gpu_metrics.gpu_families(HardwareRoot("/")))
    values = {line.split("{")[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith("DCGM_FI_DEV_")}
    theirs = smi["devices"][0]
    assert values["DCGM_FI_DEV_FB_USED"] == theirs["memory_used_mib"] == 0
    assert values["DCGM_FI_DEV_FB_FREE"] == 143771
    assert values["DCGM_FI_DEV_GPU_TEMP"] == pytest.approx(theirs["temperature_c"], abs=2)
    assert values["DCGM_FI_DEV_POWER_USAGE"] == pytest.approx(theirs["power_w"], rel=0.05)
    assert values["DCGM_FI_DEV_PCIE_LINK_WIDTH"] == theirs["pcie_link_width"] == 16
    assert values["DCGM_FI_DEV_CLOCK_THROTTLE_REASONS"] == theirs["clocks_throttle_reasons"]
    assert values["DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"] == theirs["ecc_uncorrected_volatile"] == 0
    assert values["DCGM_FI_DEV_XID_ERRORS"] == 0
    assert "DCGM_FI_DEV_RETIRED_DBE" not in values, "not supported on Hopper: left out"
    assert 'modelName="NVIDIA H200"' in text and 'pci_bus_id="00000000:00:06.0"' in text


def test_nvidia_smi_parses_the_hopper_layout(smi: dict[str, Any]) -> None:
    device = smi["devices"][0]
    assert device["pci_device_id"] == "0x233510de"
    assert device["power_limit_w"] == 700.0 and device["clock_memory_max_mhz"] == 3201
    assert device["clocks_throttle_reasons"] == 0x1, "idle"
    assert "retired_pages_sbe" not in device, "N/A on Hopper"
    assert device["serial"] == "REDACTED", "the fixture carries no serial number"


def test_the_h200_data_sheet_matches_what_the_device_reports(smi: dict[str, Any]) -> None:
    """The data-sheet row applies to the name the H200 reports, and its numbers are those
    of the SXM part the device is (700 W limit; the NVL card is capped at 600 W)."""
    device = smi["devices"][0]
    spec = known_gpu_spec(device["name"])
    assert spec["gpu_mem_bw_gbs"] == 4800 and spec["gpu_tflops"] == 989
    assert device["power_limit_w"] == 700.0
    assert device["pcie_link_gen_max"] == 5 and device["pcie_link_width_max"] == 16
    assert spec["h2d_gbs"] == 64, "PCIe Gen5 x16: 64 GB/s each way, ~55 measured"
    assert device["memory_total_mib"] / 1024 == pytest.approx(140.4, abs=0.05), \
        "the sheet's '141 GB' is 140.4 GiB as NVML and nvidia-smi count it"
    assert known_gpu_spec("NVIDIA H200 NVL")["gpu_tflops"] == 835


def test_without_pynvml_the_driver_s_nvidia_smi_answers(monkeypatch: pytest.MonkeyPatch,
                                                         replay: ReplayNvml) -> None:
    monkeypatch.setattr(nvml, "load", lambda: None)
    monkeypatch.setattr(nvidia_smi.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    ran: list[list[str]] = []

    def fake_run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        ran.append(argv)
        return subprocess.CompletedProcess(argv, 0, nvidia_smi_xml("h200"), "")

    monkeypatch.setattr(nvidia_smi.subprocess, "run", fake_run)
    answers = nvml.read_nvml()
    assert ran == [["nvidia-smi", "-q", "-x"]]
    recorded = nvml.read_nvml(replay)
    assert answers is not None and recorded is not None
    for field in STATIC:
        assert answers["devices"][0][field] == recorded["devices"][0][field], field

    monkeypatch.setattr(nvidia_smi.subprocess, "run", lambda argv, **kw: (
        subprocess.CompletedProcess(argv, 9, "", "NVIDIA-SMI has failed")))
    assert nvml.read_nvml() is None, "no driver: no GPUs, not a crash"
