"""The image write pipeline: reused aligned buffers, O_DIRECT writes, failures that must not
hang the pipeline, and a loop device as the target (a real block device)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from metalfleet.agent import disk as disk_module
from metalfleet.agent.disk import MIB, write_image
from metalfleet.core.errors import DriverError

DISK_SIZE = 64 * MIB


@pytest.fixture
def disk(tmp_path: Path) -> Path:
    path = tmp_path / "disk.raw"
    with path.open("wb") as handle:
        handle.truncate(DISK_SIZE)
    return path


def _image(tmp_path: Path, data: bytes) -> tuple[str, str]:
    path = tmp_path / "image.raw"
    path.write_bytes(data)
    return path.as_uri(), hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("direct", [False, True])
def test_unaligned_image_round_trips_through_reused_buffers(disk: Path, tmp_path: Path,
                                                            direct: bool) -> None:
    # More chunks than buffers (so buffers are reused), a zero run and an unaligned tail.
    data = os.urandom(9 * MIB) + bytes(4 * MIB) + os.urandom(MIB + 1234)
    url, digest = _image(tmp_path, data)
    result = write_image(url, disk, digest, len(data), chunk_size=MIB, direct=direct,
                         readback=True)
    assert result["bytes_written"] == len(data) and result["sha256"] == digest
    assert result["direct"] is direct  # tmp_path is on a file system that takes O_DIRECT
    with disk.open("rb") as handle:
        assert handle.read(len(data)) == data
        assert handle.read(MIB) == bytes(MIB)


def test_a_failing_write_fails_the_image_without_hanging(
    disk: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(12 * MIB)  # more chunks than buffers: a stuck pipeline would hang
    url, digest = _image(tmp_path, data)
    real = disk_module._pwrite_all
    calls = []

    def failing(fd: int, view: bytes | memoryview, offset: int) -> None:
        calls.append(offset)
        if offset == 2 * MIB:
            raise OSError(5, "Input/output error")
        real(fd, view, offset)

    monkeypatch.setattr(disk_module, "_pwrite_all", failing)
    with pytest.raises(DriverError, match=r"image write to .* failed: .*Input/output error"):
        write_image(url, disk, digest, len(data), chunk_size=MIB)
    with disk.open("rb") as handle:
        assert handle.read(MIB) == bytes(MIB)  # the head is zeroed after a failure
    assert calls == [0, MIB, 2 * MIB]  # nothing is written after the failure


def test_direct_falls_back_where_o_direct_is_refused(
    disk: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def no_direct(path: object, flags: int, *args: int) -> int:
        if flags & os.O_DIRECT:
            raise OSError(22, "Invalid argument")
        return real_open(path, flags, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", no_direct)
    data = os.urandom(3 * MIB)
    url, digest = _image(tmp_path, data)
    result = write_image(url, disk, digest, len(data), direct=True)
    assert result["direct"] is False and result["sha256"] == digest


@pytest.fixture
def loop_device(tmp_path: Path) -> Iterator[Path]:
    if shutil.which("losetup") is None:
        pytest.fail("losetup is missing: install util-linux")
    backing = tmp_path / "backing.raw"
    with backing.open("wb") as handle:
        handle.truncate(DISK_SIZE)
    attached = subprocess.run(["losetup", "--find", "--show", str(backing)],
                              capture_output=True, text=True, timeout=30)
    if attached.returncode != 0:
        pytest.fail(f"cannot attach a loop device (root and /dev/loop* needed): "
                    f"{attached.stderr.strip()}")
    device = Path(attached.stdout.strip())
    try:
        yield device
    finally:
        subprocess.run(["losetup", "--detach", str(device)], check=False, timeout=30)


def test_direct_write_to_a_block_device(loop_device: Path, tmp_path: Path) -> None:
    data = os.urandom(5 * MIB + 512)  # sector-aligned but not 4 KiB-aligned tail
    url, digest = _image(tmp_path, data)
    result = write_image(url, loop_device, digest, len(data), direct=True, readback=True)
    assert result["direct"] is True and result["verified"] is True
    with loop_device.open("rb") as handle:
        assert handle.read(len(data)) == data
