from __future__ import annotations

import hashlib
import os
import time
import types
from pathlib import Path
from typing import Any

import pytest

from metalfleet.agent import burnin
from metalfleet.agent.burnin import run_burn_in
from metalfleet.agent.disk import MIB
from metalfleet.agent.hardware_root import HardwareRoot
from metalfleet.core.errors import DriverError
from metalfleet.lab.synthetic_hardware import build_root, gpu_node_spec

SECONDS = 0.4


@pytest.fixture
def node(tmp_path: Path) -> tuple[HardwareRoot, Path]:
    root = build_root(tmp_path / "node", gpu_node_spec(0))
    return HardwareRoot(root), root / "dev/nvme0n1"


def _small_disk(tmp_path: Path, size: int) -> Path:
    path = tmp_path / "small.img"
    with path.open("wb") as f:
        f.truncate(size)
    return path


def test_burn_in_passes_within_its_time_budget(node: tuple[HardwareRoot, Path]) -> None:
    root, disk = node
    steps: list[tuple[int, str]] = []
    started = time.monotonic()
    result = run_burn_in(root, disk, SECONDS, progress=lambda p, s: steps.append((p, s)))
    elapsed = time.monotonic() - started

    assert result["passed"] is True
    assert elapsed < SECONDS + 1.5
    cpu, memory, disk_result = result["cpu"], result["memory"], result["disk"]
    # 224 threads on the spec, capped by the CPUs this test may use
    assert cpu["workers"] == min(224, len(os.sched_getaffinity(0)))
    assert cpu["ops"] > 0 and cpu["ops_per_s"] > 0
    assert memory["passes"] >= 3 and memory["size_mib"] == 64
    assert disk_result["bytes"] == 8 * MIB
    assert 4 * MIB <= disk_result["offset"] <= disk.stat().st_size - 12 * MIB
    assert disk_result["write_mib_per_s"] > 0 and disk_result["read_mib_per_s"] > 0
    assert [p for p, _ in steps] == [0, 50, 75, 100]
    # the scratch region was zeroed back (and, on the sparse file, deallocated)
    with disk.open("rb") as f:
        f.seek(disk_result["offset"])
        assert f.read(8 * MIB) == bytes(8 * MIB)
    assert disk.stat().st_blocks == 0


def test_disk_that_returns_other_data_fails(
    node: tuple[HardwareRoot, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, disk = node
    real_pread = os.pread

    def flaky_pread(fd: int, length: int, offset: int) -> bytes:
        data = bytearray(real_pread(fd, length, offset))
        data[len(data) // 2] ^= 0x01
        return bytes(data)

    monkeypatch.setattr(os, "pread", flaky_pread)
    with pytest.raises(DriverError, match=r"disk burn-in failed: .* returned different data"):
        run_burn_in(root, disk, 0.1)
    monkeypatch.undo()
    assert disk.stat().st_blocks == 0  # zeroed back even on failure


def test_cpu_that_computes_wrong_answers_fails(
    node: tuple[HardwareRoot, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}

    class Faulty:
        def __init__(self, data: bytes) -> None:
            calls["n"] += 1
            self.digest_value = hashlib.sha256(data).digest()
            if calls["n"] % 50 == 0:
                self.digest_value = bytes(32)

        def digest(self) -> bytes:
            return self.digest_value

    monkeypatch.setattr(burnin, "hashlib", types.SimpleNamespace(sha256=Faulty))
    with pytest.raises(DriverError, match=r"CPU burn-in failed: .* SHA-256 results were wrong"):
        run_burn_in(*node, 0.2)


def test_memory_that_reads_back_wrong_fails(
    node: tuple[HardwareRoot, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    real = burnin._pattern_chunk

    def drifting(pattern: Any, index: int) -> bytes:
        calls["n"] += 1
        return real(pattern, index) if calls["n"] == 1 else bytes(MIB)  # write, then verify

    monkeypatch.setattr(burnin, "_pattern_chunk", drifting)
    with pytest.raises(DriverError, match="memory burn-in failed"):
        run_burn_in(*node, 0.2, memory_mib=1)


def test_bad_parameters(node: tuple[HardwareRoot, Path], tmp_path: Path) -> None:
    root, _ = node
    with pytest.raises(DriverError, match="too small for a"):
        run_burn_in(root, _small_disk(tmp_path, 12 * MIB), 0.1)
    with pytest.raises(DriverError, match="duration must be positive"):
        run_burn_in(*node, 0)


def test_burn_in_on_a_disk_just_big_enough(tmp_path: Path) -> None:
    disk = _small_disk(tmp_path, 16 * MIB)
    result = run_burn_in(HardwareRoot(tmp_path), disk, 0.1, cpu_workers=1)
    assert result["disk"]["offset"] == 4 * MIB
    assert result["cpu"]["workers"] == 1
