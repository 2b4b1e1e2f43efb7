"""Node metrics with node_exporter's names, so the shipped rules work on either exporter.

``node_load*``, ``node_cpu_seconds_total``, ``node_memory_*_bytes`` (procfs),
``node_filesystem_{size,free,avail}_bytes`` (host root only: statvfs of the real mounts,
pseudo and network filesystems skipped so a hung NFS server cannot hang a scrape),
``node_network_{receive,transmit}_{errs,bytes}_total`` and ``node_network_up`` (sysfs), and
InfiniBand ``node_infiniband_{state_id,physical_state_id,rate_bytes_per_second,
link_downed_total,link_error_recovery_total}`` (sysfs).

Stdlib only: this module runs on deployed nodes.
"""

from __future__ import annotations

import contextlib
import os
import re

from metalfleet.agent.hardware_root import HardwareRoot
from metalfleet.agent.prom_text import Family

MEMINFO_KEYS = ("MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SwapTotal",
                "SwapFree", "HugePages_Total", "HugePages_Free")
# Pseudo and network filesystems: nothing to fill up, or a statvfs that can hang.
SKIPPED_FSTYPES = frozenset({
    "proc", "sysfs", "cgroup", "cgroup2", "devpts", "securityfs", "debugfs", "tracefs",
    "pstore", "bpf", "mqueue", "hugetlbfs", "configfs", "fusectl", "autofs", "binfmt_misc",
    "nsfs", "rpc_pipefs", "efivarfs", "devtmpfs", "nfs", "nfs4", "cifs", "smb3", "lustre",
    "ceph", "fuse.sshfs", "squashfs", "selinuxfs", "ramfs",
})
IB_RATE = re.compile(r"\s*([0-9.]+)\s*Gb/sec")


def node_families(root: HardwareRoot) -> list[Family]:
    families: list[Family] = []
    load = (root.read_text("proc/loadavg") or "").split()
    for position, name in enumerate(("node_load1", "node_load5", "node_load15")):
        family = Family(name, f"{name[9:]}m load average.")
        with contextlib.suppress(IndexError, ValueError):
            family.add(float(load[position]))
        families.append(family)
    families.append(_cpu(root))
    families += _memory(root)
    families += _filesystems(root)
    families += _network(root)
    families += _infiniband(root)
    return families


CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
USER_HZ = 100  # /proc/stat counts clock ticks; Linux reports them at 100 Hz on every arch


def _cpu(root: HardwareRoot) -> Family:
    family = Family("node_cpu_seconds_total", "Seconds the CPUs spent in each mode.", "counter")
    for line in (root.read_text("proc/stat") or "").splitlines():
        parts = line.split()
        if not parts or not parts[0].startswith("cpu") or parts[0] == "cpu":
            continue
        for mode, ticks in zip(CPU_MODES, parts[1:], strict=False):
            with contextlib.suppress(ValueError):
                family.add(int(ticks) / USER_HZ, cpu=parts[0][3:], mode=mode)
    return family


def _memory(root: HardwareRoot) -> list[Family]:
    found: dict[str, float] = {}
    for line in (root.read_text("proc/meminfo") or "").splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if key in MEMINFO_KEYS and parts:
            with contextlib.suppress(ValueError):
                found[key] = float(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    families = []
    for key in MEMINFO_KEYS:
        bytes_ = not key.startswith("HugePages")
        family = Family(f"node_memory_{key}{'_bytes' if bytes_ else ''}",
                        f"Memory information field {key}{'_bytes' if bytes_ else ''}.")
        family.add(found.get(key))
        families.append(family)
    return families


def _filesystems(root: HardwareRoot) -> list[Family]:
    size = Family("node_filesystem_size_bytes", "Filesystem size in bytes.")
    free = Family("node_filesystem_free_bytes", "Filesystem free space in bytes.")
    avail = Family("node_filesystem_avail_bytes",
                   "Filesystem space available to non-root users in bytes.")
    if not root.is_host:  # statvfs needs the real mounts
        return [size, free, avail]
    seen: set[str] = set()
    for line in (root.read_text("proc/mounts") or "").splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        device, mountpoint, fstype = parts[0], parts[1].replace("\\040", " "), parts[2]
        if fstype in SKIPPED_FSTYPES or fstype.startswith("fuse.") or mountpoint in seen:
            continue
        seen.add(mountpoint)
        try:
            stat = os.statvfs(mountpoint)
        except OSError:
            continue
        labels = {"device": device, "fstype": fstype, "mountpoint": mountpoint}
        size.add(stat.f_blocks * stat.f_frsize, **labels)
        free.add(stat.f_bfree * stat.f_frsize, **labels)
        avail.add(stat.f_bavail * stat.f_frsize, **labels)
    return [size, free, avail]


def _network(root: HardwareRoot) -> list[Family]:
    spec = (("node_network_receive_errs_total", "rx_errors", "receive errors"),
            ("node_network_transmit_errs_total", "tx_errors", "transmit errors"),
            ("node_network_receive_bytes_total", "rx_bytes", "received bytes"),
            ("node_network_transmit_bytes_total", "tx_bytes", "transmitted bytes"))
    families = [Family(name, f"Network device statistic: {text}.", "counter")
                for name, _, text in spec]
    up = Family("node_network_up", "Whether the operstate of the interface is 'up'.")
    for device in root.list_dir("sys/class/net") or []:
        if device == "lo":
            continue
        base = f"sys/class/net/{device}"
        for family, (_, stat, _) in zip(families, spec, strict=True):
            family.add(root.read_int(f"{base}/statistics/{stat}"), device=device)
        state = root.read_text(f"{base}/operstate")
        if state is not None:
            up.add(1 if state == "up" else 0, device=device)
    return [*families, up]


def _state_id(text: str | None) -> int | None:
    number, sep, _ = (text or "").partition(":")  # "4: ACTIVE"
    return int(number) if sep and number.strip().isdigit() else None


def _infiniband(root: HardwareRoot) -> list[Family]:
    state = Family("node_infiniband_state_id", "State of the InfiniBand port "
                   "(0: ?, 1: DOWN, 2: INIT, 3: ARMED, 4: ACTIVE, 5: ACTIVE_DEFER).")
    phys = Family("node_infiniband_physical_state_id",
                  "Physical state of the InfiniBand port (5: LinkUp).")
    rate = Family("node_infiniband_rate_bytes_per_second", "Maximum signal transfer rate.")
    downed = Family("node_infiniband_link_downed_total", "Number of times the link failed "
                    "to recover from an error state and went down.", "counter")
    errors = Family("node_infiniband_link_error_recovery_total", "Number of times the link "
                    "successfully recovered from an error state.", "counter")
    for device in root.list_dir("sys/class/infiniband") or []:
        for port in root.list_dir(f"sys/class/infiniband/{device}/ports") or []:
            base = f"sys/class/infiniband/{device}/ports/{port}"
            labels = {"device": device, "port": port}
            state.add(_state_id(root.read_text(f"{base}/state")), **labels)
            phys.add(_state_id(root.read_text(f"{base}/phys_state")), **labels)
            match = IB_RATE.match(root.read_text(f"{base}/rate") or "")
            rate.add(float(match.group(1)) * 1e9 / 8 if match else None, **labels)
            downed.add(root.read_int(f"{base}/counters/link_downed"), **labels)
            errors.add(root.read_int(f"{base}/counters/link_error_recovery"), **labels)
    return [state, phys, rate, downed, errors]
