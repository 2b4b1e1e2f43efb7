"""A short, bounded acceptance test: CPU, memory and disk, each checked, not just timed.

* CPU: threads hash a fixed buffer with SHA-256 for a bounded time (hashlib releases the GIL,
  so threads load every core without forking inside the conductor) and compare every digest
  with the known one: a wrong answer means a faulty core.
* memory: fill a buffer with patterns (0x55, 0xAA, address-stamped) and read each back.
* disk: write random data to a scratch region at a random offset (clear of the partition
  tables at both ends), drop it from the page cache, read back and compare, then zero it.

Longer soak tests (stress-ng, DCGM diag, NCCL all-reduce) will run from the ramdisk later;
this is the part that also runs in-process in the lab.

Stdlib only: this module runs inside the deploy ramdisk.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from pathlib import Path
from typing import Any

from metalfleet.agent.disk import METADATA_EDGE, MIB, Progress, open_device, zero_range
from metalfleet.agent.hardware_root import HardwareRoot
from metalfleet.core.errors import DriverError

CPU_BLOCK = 256 * 1024
MAX_CPU_WORKERS = 64


def _no_progress(percent: int, step: str) -> None:
    return None


def _host_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _root_threads(root: HardwareRoot) -> int | None:
    text = root.read_text("proc/cpuinfo") or ""
    count = sum(1 for line in text.splitlines() if line.startswith("processor"))
    return count or None


def cpu_test(seconds: float, workers: int) -> dict[str, Any]:
    block = random.Random(1).randbytes(CPU_BLOCK)
    expected = hashlib.sha256(block).digest()
    counts = [0] * workers
    errors = [0] * workers
    deadline = time.monotonic() + seconds

    def work(slot: int) -> None:
        # At least one digest per thread: on a loaded host a thread may first run after the
        # deadline, and a CPU test that computed nothing has measured nothing.
        while True:
            if hashlib.sha256(block).digest() != expected:
                errors[slot] += 1
            counts[slot] += 1
            if time.monotonic() >= deadline:
                return

    started = time.monotonic()
    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = max(time.monotonic() - started, 1e-9)
    if sum(errors):
        raise DriverError(
            f"CPU burn-in failed: {sum(errors)} of {sum(counts)} SHA-256 results were wrong "
            "(faulty core or overheating); take the node out of service and check it"
        )
    ops = sum(counts)
    return {
        "workers": workers,
        "seconds": round(elapsed, 3),
        "ops": ops,
        "ops_per_s": round(ops / elapsed, 1),
        "mib_per_s": round(ops * CPU_BLOCK / MIB / elapsed, 1),
    }


def _pattern_chunk(pattern: int | None, index: int) -> bytes:
    if pattern is not None:
        return bytes([pattern]) * MIB
    stamp = index.to_bytes(8, "little") + (~index & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little")
    return stamp * (MIB // len(stamp))


def memory_test(seconds: float, size_mib: int) -> dict[str, Any]:
    buffer = bytearray(size_mib * MIB)
    view = memoryview(buffer)
    patterns: list[int | None] = [0x55, 0xAA, None]
    started = time.monotonic()
    deadline = started + seconds
    passes = 0
    while passes < len(patterns) or time.monotonic() < deadline:
        pattern = patterns[passes % len(patterns)]
        for index in range(size_mib):
            view[index * MIB : (index + 1) * MIB] = _pattern_chunk(pattern, index)
        for index in range(size_mib):
            if buffer[index * MIB : (index + 1) * MIB] != _pattern_chunk(pattern, index):
                raise DriverError(
                    f"memory burn-in failed: pattern {pattern if pattern is not None else 'addr'}"
                    f" read back wrong in MiB {index} of {size_mib}; run a full memtest and "
                    "replace the failing DIMM"
                )
        passes += 1
    elapsed = max(time.monotonic() - started, 1e-9)
    view.release()
    return {
        "size_mib": size_mib,
        "passes": passes,
        "seconds": round(elapsed, 3),
        "mib_per_s": round(passes * size_mib * 2 / elapsed, 1),
    }


def disk_test(device: Path, scratch_bytes: int) -> dict[str, Any]:
    with open_device(device) as (fd, size, is_block):
        low, high = METADATA_EDGE, size - METADATA_EDGE - scratch_bytes
        if high < low:
            raise DriverError(
                f"disk burn-in: {device} ({size} bytes) is too small for a "
                f"{scratch_bytes}-byte scratch region"
            )
        offset = random.randrange(low, high + 1) // 4096 * 4096
        data = os.urandom(scratch_bytes)
        started = time.monotonic()
        written = 0
        while written < scratch_bytes:
            written += os.pwrite(fd, data[written:], offset + written)
        os.fsync(fd)
        write_s = max(time.monotonic() - started, 1e-9)
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, offset, scratch_bytes, os.POSIX_FADV_DONTNEED)
        started = time.monotonic()
        back = os.pread(fd, scratch_bytes, offset)
        read_s = max(time.monotonic() - started, 1e-9)
        zero_range(fd, offset, scratch_bytes, is_block)
        os.fsync(fd)
        if back != data:
            bad = next((i for i, (a, b) in enumerate(zip(back, data, strict=False)) if a != b), 0)
            raise DriverError(
                f"disk burn-in failed: {device} returned different data at byte "
                f"{offset + bad} than was written; check SMART and replace the disk"
            )
        if os.pread(fd, scratch_bytes, offset).count(0) != scratch_bytes:
            raise DriverError(f"disk burn-in: scratch region of {device} did not zero back")
    return {
        "device": str(device),
        "offset": offset,
        "bytes": scratch_bytes,
        "write_mib_per_s": round(scratch_bytes / MIB / write_s, 1),
        "read_mib_per_s": round(scratch_bytes / MIB / read_s, 1),
    }


def run_burn_in(
    root: HardwareRoot,
    device: Path | str,
    seconds: float = 2.0,
    *,
    cpu_workers: int | None = None,
    memory_mib: int = 64,
    scratch_bytes: int = 8 * MIB,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run CPU, memory and disk checks in about ``seconds``; DriverError on a failed check.

    The CPU test uses as many threads as the node has (from ``root``'s cpuinfo), capped by
    the CPUs this process may run on — in the lab, the host's.
    """
    report = progress or _no_progress
    if seconds <= 0:
        raise DriverError("burn-in duration must be positive")
    workers = cpu_workers or min(_root_threads(root) or _host_cpus(), _host_cpus())
    workers = max(1, min(workers, MAX_CPU_WORKERS))
    started = time.monotonic()
    report(0, f"CPU test on {workers} threads")
    cpu = cpu_test(seconds * 0.5, workers)
    report(50, f"memory test on {memory_mib} MiB")
    memory = memory_test(seconds * 0.25, memory_mib)
    report(75, "disk scratch write/read test")
    disk = disk_test(Path(device), scratch_bytes)
    report(100, "burn-in passed")
    return {
        "passed": True,
        "seconds": round(time.monotonic() - started, 3),
        "cpu": cpu,
        "memory": memory,
        "disk": disk,
    }
