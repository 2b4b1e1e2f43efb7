from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from metalfleet.agent import disk as disk_module
from metalfleet.agent.disk import MIB, metadata_regions, wipe, write_image
from metalfleet.agent.main import main
from metalfleet.core.errors import DriverError

DISK_SIZE = 64 * MIB


@pytest.fixture
def disk(tmp_path: Path) -> Path:
    path = tmp_path / "disk.img"
    with path.open("wb") as f:
        f.truncate(DISK_SIZE)
    return path


def _fill(path: Path, offset: int, data: bytes) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(data)


def _read(path: Path, offset: int, length: int) -> bytes:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(length)


def _gpt(path: Path, partitions: list[tuple[int, int]]) -> None:
    """A minimal GPT: header at LBA 1, entries at LBA 2, partitions as (first, last) LBAs."""
    header = bytearray(92)
    header[:8] = b"EFI PART"
    struct.pack_into("<QII", header, 72, 2, 128, 128)
    _fill(path, 512, bytes(header))
    for i, (first, last) in enumerate(partitions):
        entry = bytearray(128)
        entry[:16] = b"\x0f" * 16  # type GUID: anything non-zero is "used"
        struct.pack_into("<QQ", entry, 32, first, last)
        _fill(path, 1024 + 128 * i, bytes(entry))


def _progress_log() -> tuple[list[tuple[int, str]], Any]:
    log: list[tuple[int, str]] = []
    return log, lambda percent, step: log.append((percent, step))


# --- metadata wipe ------------------------------------------------------------------------


def test_metadata_wipe_kills_tables_and_partition_signatures_only(disk: Path) -> None:
    start, end = 8 * MIB, 40 * MIB  # one partition, 8-40 MiB
    _fill(disk, 0, b"\xaa" * DISK_SIZE)
    _gpt(disk, [(start // 512, end // 512 - 1)])
    log, progress = _progress_log()

    result = wipe(disk, "metadata", progress)

    assert result["mode"] == "metadata" and result["verified"] is True
    assert _read(disk, 0, 4 * MIB) == bytes(4 * MIB)  # MBR, GPT, whole-disk signatures
    assert _read(disk, DISK_SIZE - 4 * MIB, 4 * MIB) == bytes(4 * MIB)  # backup GPT
    assert _read(disk, start, MIB) == bytes(MIB)  # the partition's superblock area
    assert _read(disk, end - MIB, MIB) == bytes(MIB)  # its end (mdraid 1.0, ZFS L2/L3)
    # metadata mode leaves the bulk alone
    assert _read(disk, 20 * MIB, MIB) == b"\xaa" * MIB
    assert _read(disk, 4 * MIB, MIB) == b"\xaa" * MIB
    assert log[-1][0] == 100
    assert result["bytes_zeroed"] == result["bytes_verified"]


def test_metadata_regions_read_an_mbr(disk: Path) -> None:
    mbr = bytearray(512)
    struct.pack_into("<BBBBBBBBII", mbr, 446, 0x80, 0, 0, 0, 0x83, 0, 0, 0, 16384, 20480)
    mbr[510:512] = b"\x55\xaa"
    _fill(disk, 0, bytes(mbr))
    fd = os.open(disk, os.O_RDONLY)
    try:
        regions = metadata_regions(fd, DISK_SIZE)
    finally:
        os.close(fd)
    covered = {(o, o + n) for o, n in regions}
    assert (0, 4 * MIB) in covered
    assert any(a <= 8 * MIB and b >= 9 * MIB for a, b in covered)  # partition start
    assert any(a <= 17 * MIB and b >= 18 * MIB for a, b in covered)  # partition end


def test_metadata_wipe_on_a_full_size_sparse_disk_allocates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "big.img"
    with path.open("wb") as f:
        f.truncate(3_840_755_982_336)
    _fill(path, 0, b"\x01" * MIB)
    result = wipe(path, "metadata")
    assert result["method"] == "zero-regions"
    assert os.stat(path).st_blocks == 0  # holes punched, not zeros written
    assert _read(path, 0, MIB) == bytes(MIB)


def test_metadata_wipe_verification_catches_leftovers(
    disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(disk, 100, b"\x01")
    monkeypatch.setattr(disk_module, "zero_range", lambda *args: None)  # a disk that lies
    with pytest.raises(DriverError, match=r"verification failed.*offset 0"):
        wipe(disk, "metadata")


# --- full wipe ----------------------------------------------------------------------------


def _assert_all_zero(path: Path) -> None:
    data = path.read_bytes()
    assert data.count(0) == len(data), (
        f"non-zero byte at {next(i for i, b in enumerate(data) if b)}"
    )


def test_full_wipe_punches_holes(disk: Path) -> None:
    for offset in (0, 17 * MIB + 3, DISK_SIZE - len(b"tenant-data")):
        _fill(disk, offset, b"tenant-data")
    result = wipe(disk, "full")
    assert result["method"] == "punch-hole"
    assert result["bytes_zeroed"] == DISK_SIZE and result["verified"] is True
    _assert_all_zero(disk)
    assert disk.stat().st_size == DISK_SIZE


def test_full_wipe_falls_back_to_truncate_then_zero_writes(
    disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_punch(fd: int, offset: int, length: int) -> None:
        raise OSError(95, "Operation not supported")

    monkeypatch.setattr(disk_module, "_punch_hole", no_punch)
    _fill(disk, 33 * MIB, os.urandom(MIB))
    assert wipe(disk, "full")["method"] == "truncate"
    _assert_all_zero(disk)
    assert disk.stat().st_size == DISK_SIZE

    def no_truncate(fd: int, length: int) -> None:
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "ftruncate", no_truncate)
    _fill(disk, 33 * MIB, os.urandom(MIB))
    log, progress = _progress_log()
    assert wipe(disk, "full", progress)["method"] == "zero-write"
    _assert_all_zero(disk)
    zeroing = [p for p, step in log if step == "zeroing disk"]
    assert zeroing == sorted(zeroing) and len(zeroing) >= 10
    assert log[-1] == (100, "full wipe verified")


def test_full_wipe_verification_catches_leftovers(
    disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(disk, DISK_SIZE - MIB, b"\x07" * MIB)  # the tail is always sampled
    monkeypatch.setattr(disk_module, "_full_wipe", lambda *args: "punch-hole")
    with pytest.raises(DriverError, match="wipe verification failed"):
        wipe(disk, "full")


def test_wipe_rejects_bad_mode_and_missing_device(disk: Path, tmp_path: Path) -> None:
    with pytest.raises(DriverError, match="unknown wipe mode 'secure'"):
        wipe(disk, "secure")  # type: ignore[arg-type]
    with pytest.raises(DriverError, match="not found"):
        wipe(tmp_path / "nope", "metadata")
    with pytest.raises(DriverError, match="neither a block device"):
        wipe(tmp_path, "metadata")


# --- write_image --------------------------------------------------------------------------


def _image(tmp_path: Path, data: bytes) -> tuple[str, str]:
    path = tmp_path / "image.raw"
    path.write_bytes(data)
    return path.as_uri(), hashlib.sha256(data).hexdigest()


def test_write_image_from_file_url_round_trips(disk: Path, tmp_path: Path) -> None:
    data = os.urandom(MIB + 123) + bytes(8 * MIB) + b"end"
    url, digest = _image(tmp_path, data)
    log, progress = _progress_log()
    result = write_image(url, disk, digest.upper(), len(data), progress, readback=True)
    assert result["bytes_written"] == len(data)
    assert result["sha256"] == digest and result["verified"] is True
    assert _read(disk, 0, len(data)) == data
    assert disk.stat().st_size == DISK_SIZE
    assert disk.stat().st_blocks * 512 < 8 * MIB  # the zero run stayed sparse
    percents = [p for p, _ in log]
    assert percents == sorted(percents) and percents[-1] == 100


def test_checksum_mismatch_raises_and_zeroes_the_first_mib(disk: Path, tmp_path: Path) -> None:
    _fill(disk, 0, b"\x5a" * 2 * MIB)  # a previous image
    data = os.urandom(3 * MIB)
    url, digest = _image(tmp_path, data)
    wrong = "0" * 64
    with pytest.raises(DriverError) as caught:
        write_image(url, disk, wrong, len(data))
    assert caught.value.detail == (
        f"image checksum mismatch: expected {wrong}, got {digest}; "
        "re-register the image or fix the source"
    )
    assert _read(disk, 0, MIB) == bytes(MIB)
    assert _read(disk, MIB, MIB) == data[MIB : 2 * MIB]  # the rest of the write happened


def test_image_larger_than_disk(disk: Path, tmp_path: Path) -> None:
    url, digest = _image(tmp_path, bytes(DISK_SIZE + 512))
    with pytest.raises(DriverError, match="too large for the disk: registered size"):
        write_image(url, disk, digest, DISK_SIZE + 512)
    with pytest.raises(DriverError, match="too large for the disk: served size"):
        write_image(url, disk, digest, None)


def test_unsized_stream_that_overruns_the_disk(
    disk: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(disk, 0, b"\x33" * MIB)

    class Endless(io.BytesIO):
        headers: dict[str, str] = {}  # noqa: RUF012 - no Content-Length, like chunked HTTP

    body = Endless(b"\x01" * (DISK_SIZE + MIB))
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: body)
    with pytest.raises(DriverError, match="download exceeds"):
        write_image("http://example.invalid/x.raw", disk, "a" * 64)
    assert _read(disk, 0, MIB) == bytes(MIB)


def test_write_image_rejects_bad_requests(disk: Path, tmp_path: Path) -> None:
    url, digest = _image(tmp_path, b"x" * 4096)
    with pytest.raises(DriverError, match="qcow2 support lands with network boot"):
        write_image(url, disk, digest, disk_format="qcow2")
    with pytest.raises(DriverError, match="scheme must be one of"):
        write_image("ftp://host/x.raw", disk, digest)
    with pytest.raises(DriverError, match="not a 64-digit hex"):
        write_image(url, disk, "abc")
    with pytest.raises(DriverError, match="image size mismatch: registered 100 bytes"):
        write_image(url, disk, digest, 100)
    with pytest.raises(DriverError, match="cannot fetch image"):
        write_image((tmp_path / "missing.raw").as_uri(), disk, digest)


# --- the metalfleet-agent command line ----------------------------------------------------


def test_agent_cli_write_image_and_wipe(
    disk: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = os.urandom(2 * MIB)
    url, digest = _image(tmp_path, data)
    assert main(["write-image", "--url", url, "--device", str(disk), "--sha256", digest]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["bytes_written"] == len(data)
    assert "[100%] image written and verified" in out.err
    assert _read(disk, 0, len(data)) == data

    assert main(["wipe", "--device", str(disk), "--mode", "full"]) == 0
    assert json.loads(capsys.readouterr().out)["method"] == "punch-hole"
    _assert_all_zero(disk)

    assert main(["wipe", "--device", str(tmp_path / "missing")]) == 1
    error = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert error["title"] == "Hardware error" and "not found" in error["error"]
