"""The one reader of the live NVML (``pynvml``, package ``nvidia-ml-py``) on a node.

Inventory, the in-band health checks and the exporter all want GPU facts; they used to ask
NVML each in its own way and disagreed on units and names. :func:`read_nvml` asks once per
call and answers in the shape of the lab's ``run/metalfleet/nvml.json`` (see
agent/inventory.py), so every reader handles a real GPU and a synthetic one alike::

    {"driver_version": "580.159.04", "cuda_version": "13.0", "nvml_version": "13.580...",
     "devices": [{"index": 0, "name": "NVIDIA H200", "uuid": "GPU-...", ...}, ...]}

Per device, each field is present only when NVML answered it (a query may be NOT_SUPPORTED:
no ECC on a consumer GPU, no NVLink on a PCIe card, no page retirement on Hopper, which
remaps rows instead). Units are those of ``nvidia-smi -q``: MiB, W, MHz, C, %; PCI bus ids
as NVML gives them (``00000000:18:00.0``, 8-digit domain). Field names:

    name, uuid, serial, vbios_version, pci_bus_id, pci_device_id (0x233510de),
    memory_total_mib, memory_used_mib, memory_reserved_mib,
    ecc_enabled, ecc_pending_enabled, ecc_corrected_volatile, ecc_uncorrected_volatile,
    retired_pages_sbe, retired_pages_dbe, retired_pages_pending,
    remapped_rows_correctable, remapped_rows_uncorrectable, remap_pending, remap_failure,
    utilization_gpu_pct, temperature_c, power_w, power_limit_w,
    clock_graphics_mhz, clock_sm_mhz, clock_memory_mhz,
    clock_graphics_max_mhz, clock_sm_max_mhz, clock_memory_max_mhz,
    clocks_throttle_reasons (bitmask; NVML calls them clocks event reasons since 12.5),
    pcie_link_gen, pcie_link_width, pcie_link_gen_max, pcie_link_width_max,
    mig_enabled, nvlink_active_links, nvlink_crc_flit_errors, nvlink_crc_data_errors

Stdlib only (pynvml is imported lazily): this module runs on deployed nodes and the ramdisk.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
from collections.abc import Callable
from typing import Any

from metalfleet.agent import nvidia_smi

log = logging.getLogger("metalfleet.agent.nvml")

MIB = 1024 * 1024


def mib(count: int) -> int:
    """Bytes -> MiB rounded up, as nvidia-smi prints them (644939776 B reserved = 616 MiB on
    the H200 we checked; flooring said 615)."""
    return -(-int(count) // MIB)


def text(value: Any) -> str:
    """pynvml answers ``bytes`` in old releases and ``str`` in new ones."""
    return value.decode() if isinstance(value, bytes) else str(value)


def cuda_version(encoded: int) -> str:
    """``nvmlSystemGetCudaDriverVersion``'s 13000 -> ``"13.0"`` (12040 -> ``"12.4"``)."""
    return f"{encoded // 1000}.{encoded % 1000 // 10}"


def load() -> Any | None:
    """The initialised ``pynvml`` module, or None without the package or an NVIDIA driver."""
    try:
        nvml: Any = importlib.import_module("pynvml")
        nvml.nvmlInit()
    except Exception:  # ImportError, or NVMLError_LibraryNotFound/DriverNotLoaded
        return None
    return nvml


def read_nvml(nvml: Any | None = None) -> dict[str, Any] | None:
    """Everything the agent wants from NVML, else from ``nvidia-smi -q -x`` when the Python
    binding is absent, or None when neither answers (no NVIDIA driver).

    ``nvml`` is an initialised module (tests pass a replay of answers recorded on a real
    GPU); by default :func:`load` is called and NVML is shut down afterwards.
    """
    owned = nvml is None
    nvml = load() if owned else nvml
    if nvml is None:
        # No pynvml on this node (it is a pip package; nvidia-smi comes with the driver).
        return nvidia_smi.read_nvidia_smi()
    try:
        system: dict[str, Any] = {}
        _ask(system, "driver_version", lambda: text(nvml.nvmlSystemGetDriverVersion()))
        _ask(system, "cuda_version",
             lambda: cuda_version(int(nvml.nvmlSystemGetCudaDriverVersion())))
        _ask(system, "nvml_version", lambda: text(nvml.nvmlSystemGetNVMLVersion()))
        count = int(nvml.nvmlDeviceGetCount())
        return {**system, "devices": [device(nvml, index) for index in range(count)]}
    except Exception as exc:  # NVML answered nvmlInit but not the device count
        log.warning("NVML read failed: %s", exc)
        return None
    finally:
        if owned:
            with contextlib.suppress(Exception):
                nvml.nvmlShutdown()


def _ask(into: dict[str, Any], key: str, read: Callable[[], Any]) -> None:
    """``into[key] = read()`` unless NVML says no (NOT_SUPPORTED, NO_PERMISSION, ...)."""
    try:
        value = read()
    except Exception:
        return
    if value is not None:
        into[key] = value


def device(nvml: Any, index: int) -> dict[str, Any]:
    """One GPU's answers: each field on its own, so one refusal costs one field."""
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    out: dict[str, Any] = {"index": index}

    def ask(key: str, read: Callable[[], Any]) -> None:
        _ask(out, key, read)

    ask("name", lambda: text(nvml.nvmlDeviceGetName(handle)))
    ask("uuid", lambda: text(nvml.nvmlDeviceGetUUID(handle)))

    def constant(name: str) -> Any:
        return getattr(nvml, name)

    ask("serial", lambda: text(nvml.nvmlDeviceGetSerial(handle)))
    ask("vbios_version", lambda: text(nvml.nvmlDeviceGetVbiosVersion(handle)))
    _pci(nvml, handle, out)
    _memory(nvml, handle, out)
    _ecc(nvml, handle, out)
    ask("utilization_gpu_pct", lambda: int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu))
    ask("temperature_c", lambda: int(nvml.nvmlDeviceGetTemperature(
        handle, constant("NVML_TEMPERATURE_GPU"))))
    ask("power_w", lambda: round(nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0, 3))  # mW
    ask("power_limit_w", lambda: round(nvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000.0, 3))
    for clock, name in (("graphics", "NVML_CLOCK_GRAPHICS"), ("sm", "NVML_CLOCK_SM"),
                        ("memory", "NVML_CLOCK_MEM")):
        ask(f"clock_{clock}_mhz", functools.partial(
            _int_of, nvml, "nvmlDeviceGetClockInfo", handle, name))
        ask(f"clock_{clock}_max_mhz", functools.partial(
            _int_of, nvml, "nvmlDeviceGetMaxClockInfo", handle, name))
    ask("clocks_throttle_reasons", lambda: int(_event_reasons(nvml)(handle)))
    ask("mig_enabled", lambda: bool(nvml.nvmlDeviceGetMigMode(handle)[0]))
    _nvlink(nvml, handle, out)
    return out


def _int_of(nvml: Any, query: str, handle: Any, constant: str) -> int:
    """``int(nvml.<query>(handle, nvml.<constant>))``, looked up when asked: a pynvml without
    the function or the constant is one more unanswered field, not a failed read."""
    return int(getattr(nvml, query)(handle, getattr(nvml, constant)))


def _event_reasons(nvml: Any) -> Callable[[Any], Any]:
    """The 12.5+ name, else the old one (both return the same bitmask)."""
    found = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
    return found or nvml.nvmlDeviceGetCurrentClocksThrottleReasons  # type: ignore[no-any-return]


def _pci(nvml: Any, handle: Any, out: dict[str, Any]) -> None:
    def info() -> None:
        pci = nvml.nvmlDeviceGetPciInfo(handle)
        out["pci_bus_id"] = text(pci.busId)
        out["pci_device_id"] = f"0x{int(pci.pciDeviceId) & 0xFFFFFFFF:08x}"

    _ask(out, "_pci", info)
    _ask(out, "pcie_link_gen", lambda: int(nvml.nvmlDeviceGetCurrPcieLinkGeneration(handle)))
    _ask(out, "pcie_link_width", lambda: int(nvml.nvmlDeviceGetCurrPcieLinkWidth(handle)))
    _ask(out, "pcie_link_gen_max", lambda: int(nvml.nvmlDeviceGetMaxPcieLinkGeneration(handle)))
    _ask(out, "pcie_link_width_max", lambda: int(nvml.nvmlDeviceGetMaxPcieLinkWidth(handle)))


def _memory(nvml: Any, handle: Any, out: dict[str, Any]) -> None:
    def info() -> None:
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        out["memory_total_mib"] = mib(memory.total)
        out["memory_used_mib"] = mib(memory.used)

    def reserved() -> None:
        # v1 counts the driver's reservation as used: 615 MiB "used" on an idle H200 where
        # nvidia-smi says 0. v2 splits it out (nvidia-smi's "Reserved"); prefer it.
        version = getattr(nvml, "nvmlMemory_v2", None)
        if version is None:
            return
        memory = nvml.nvmlDeviceGetMemoryInfo(handle, version=version)
        out["memory_reserved_mib"] = mib(memory.reserved)
        out["memory_used_mib"] = mib(memory.used)

    _ask(out, "_memory", info)
    _ask(out, "_memory_v2", reserved)


def _ecc(nvml: Any, handle: Any, out: dict[str, Any]) -> None:
    def ask(key: str, read: Callable[[], Any]) -> None:
        _ask(out, key, read)

    def mode() -> None:
        current, pending = nvml.nvmlDeviceGetEccMode(handle)
        out["ecc_enabled"], out["ecc_pending_enabled"] = bool(current), bool(pending)

    def remapped() -> None:
        correctable, uncorrectable, pending, failure = nvml.nvmlDeviceGetRemappedRows(handle)
        out.update(remapped_rows_correctable=int(correctable),
                   remapped_rows_uncorrectable=int(uncorrectable),
                   remap_pending=bool(pending), remap_failure=bool(failure))

    ask("_ecc_mode", mode)
    def ecc_total(kind: str) -> int:
        return int(nvml.nvmlDeviceGetTotalEccErrors(handle, getattr(nvml, kind),
                                                     nvml.NVML_VOLATILE_ECC))

    def retired(cause: str) -> int:
        return len(nvml.nvmlDeviceGetRetiredPages(handle, getattr(nvml, cause)))

    for key, kind in (("ecc_corrected_volatile", "NVML_MEMORY_ERROR_TYPE_CORRECTED"),
                      ("ecc_uncorrected_volatile", "NVML_MEMORY_ERROR_TYPE_UNCORRECTED")):
        ask(key, functools.partial(ecc_total, kind))
    for key, cause in (("retired_pages_sbe",
                        "NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS"),
                       ("retired_pages_dbe", "NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR")):
        ask(key, functools.partial(retired, cause))
    ask("retired_pages_pending",
        lambda: bool(nvml.nvmlDeviceGetRetiredPagesPendingStatus(handle)))
    ask("_remapped", remapped)


def _nvlink(nvml: Any, handle: Any, out: dict[str, Any]) -> None:
    """Active links, and CRC error sums over the links NVML knows. A GPU without NVLink
    answers NOT_SUPPORTED for link 0 (the H200 we checked): 0 links, no CRC counters."""
    active = 0
    crc = {"nvlink_crc_flit_errors": 0, "nvlink_crc_data_errors": 0}
    counted = False
    for link in range(int(getattr(nvml, "NVML_NVLINK_MAX_LINKS", 18))):
        try:
            up = nvml.nvmlDeviceGetNvLinkState(handle, link) == 1
        except Exception:  # NOT_SUPPORTED (no NVLink) / INVALID_ARGUMENT past the last link
            break
        active += int(up)
        for key, counter in (("nvlink_crc_flit_errors", "NVML_NVLINK_ERROR_DL_CRC_FLIT"),
                             ("nvlink_crc_data_errors", "NVML_NVLINK_ERROR_DL_CRC_DATA")):
            with contextlib.suppress(Exception):
                crc[key] += int(nvml.nvmlDeviceGetNvLinkErrorCounter(
                    handle, link, getattr(nvml, counter)))
                counted = True
    out["nvlink_active_links"] = active
    if counted:
        out.update(crc)
