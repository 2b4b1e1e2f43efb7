"""Disk wipe and raw image write, on a block device or (in the lab) a sparse regular file.

Metadata wipe — which bytes, and why:

* the first 4 MiB of the disk: protective MBR, the primary GPT header and entries (LBA 1-33
  with 512-byte sectors, up to 24 KiB with 4 KiB sectors), whole-disk signatures (XFS and
  LVM at 0, ext4 at 1 KiB, mdraid 1.1/1.2 and bcache at 0/4 KiB, ISO9660 at 32 KiB, btrfs
  at 64 KiB, ZFS labels L0/L1 in the first 512 KiB) and the start of a first partition that
  is aligned at 1 or 2 MiB, as partitioning tools do;
* the last 4 MiB: the backup GPT (last 33 LBAs), mdraid 0.90/1.0 superblocks (last
  64-128 KiB) and ZFS labels L2/L3 (last 512 KiB), with margin for unaligned sizes;
* for every partition in the MBR/GPT read *before* wiping: its first and last 1 MiB (the
  same signatures, relative to the partition — what ``wipefs --all`` per partition does)
  and btrfs's mirror superblocks at 64 MiB and 256 GiB from its start.

A plain "first and last 1 MiB" would leave a partition's filesystem superblock intact and
let a later ``blkid``/``mdadm --assemble`` resurrect the previous tenant's volume.

Full wipe: on a block device ``BLKDISCARD`` (verified, since discard does not promise zeros
on every device), else zeroing through ``BLKZEROOUT`` or writes; on a regular file (the lab's
sparse disk) ``fallocate(PUNCH_HOLE|KEEP_SIZE)``, else truncate to 0 and back, else writes.
Both modes read back what they wiped (metadata) or sampled regions (full) and raise
:class:`DriverError` when a non-zero byte remains.

Secure erase (``nvme format --ses``, ATA security erase via ``hdparm``) is not done yet:
:func:`secure_erase` is the hook for it; it must end with the same :func:`_verify` read-back.

Stdlib only: this module runs inside the deploy ramdisk.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import http.client
import mmap
import os
import queue
import random
import stat
import struct
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from metalfleet.core.errors import DriverError

Progress = Callable[[int, str], None]
WipeMode = Literal["metadata", "full"]

MIB = 1024 * 1024
GIB = 1024 * MIB
METADATA_EDGE = 4 * MIB
PARTITION_EDGE = 1 * MIB
BTRFS_MIRRORS = (64 * MIB, 256 * GIB)
HEAD_ON_FAILURE = 1 * MIB
VERIFY_SAMPLES = 64
VERIFY_SAMPLE_SIZE = 64 * 1024
ZERO_CHUNK = 4 * MIB
SUPPORTED_SCHEMES = ("http", "https", "file")
PIPELINE_BUFFERS = 6  # chunks in flight between download, hashing and writing
DIRECT_WRITERS = 2
DIRECT_ALIGN = 4096  # O_DIRECT wants offsets, lengths and buffers aligned to the block size

# <linux/fs.h>: _IO(0x12, n)
BLKSSZGET = 0x1268
BLKDISCARD = 0x1277
BLKZEROOUT = 0x127F
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02


def _no_progress(percent: int, step: str) -> None:
    return None


# --- device access ------------------------------------------------------------------------


@contextmanager
def open_device(device: Path) -> Iterator[tuple[int, int, bool]]:
    """Yield ``(fd, size_bytes, is_block)``. A block device is opened O_EXCL: mounted -> EBUSY."""
    try:
        mode = os.stat(device).st_mode
    except OSError as exc:
        raise DriverError(f"disk {device} not found: {exc.strerror}") from exc
    is_block = stat.S_ISBLK(mode)
    if not (is_block or stat.S_ISREG(mode)):
        raise DriverError(f"{device} is neither a block device nor a disk image file")
    flags = os.O_RDWR | getattr(os, "O_CLOEXEC", 0) | (os.O_EXCL if is_block else 0)
    try:
        fd = os.open(device, flags)
    except OSError as exc:
        hint = " (mounted or in use?)" if exc.errno == errno.EBUSY else ""
        raise DriverError(f"cannot open disk {device}: {exc.strerror}{hint}") from exc
    try:
        yield fd, os.lseek(fd, 0, os.SEEK_END), is_block
    finally:
        os.close(fd)


def _sector_size(fd: int, is_block: bool) -> int:
    if not is_block:
        return 512
    try:
        buf = fcntl.ioctl(fd, BLKSSZGET, b"\0" * 4)
        return int(struct.unpack("i", buf)[0]) or 512
    except OSError:
        return 512


def _punch_hole(fd: int, offset: int, length: int) -> None:
    """Deallocate a range of a regular file (reads as zeros, size kept). Raises OSError."""
    libc = ctypes.CDLL(None, use_errno=True)
    fallocate = getattr(libc, "fallocate64", None) or libc.fallocate
    fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
    if fallocate(fd, mode, offset, length) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _write_zeros(fd: int, offset: int, length: int, is_block: bool) -> None:
    """Zero a range: BLKZEROOUT on a block device when it works, else plain writes."""
    if is_block:
        try:
            fcntl.ioctl(fd, BLKZEROOUT, struct.pack("QQ", offset, length))
            return
        except OSError:
            pass
    zeros = bytes(min(ZERO_CHUNK, length))
    end = offset + length
    while offset < end:
        step = min(len(zeros), end - offset)
        _pwrite_all(fd, memoryview(zeros)[:step], offset)
        offset += step


def zero_range(fd: int, offset: int, length: int, is_block: bool) -> None:
    """Make a (small) range read as zeros; on a sparse file without allocating space."""
    if length <= 0:
        return
    if not is_block:
        try:
            _punch_hole(fd, offset, length)
            return
        except OSError:
            pass
    _write_zeros(fd, offset, length, is_block)


def _nonzero_at(fd: int, offset: int, length: int) -> int | None:
    """Offset of the first chunk holding a non-zero byte in the range, or None."""
    end = offset + length
    while offset < end:
        chunk = os.pread(fd, min(MIB, end - offset), offset)
        if not chunk:
            return None
        if chunk.count(0) != len(chunk):
            return offset
        offset += len(chunk)
    return None


def _verify(fd: int, regions: list[tuple[int, int]], device: Path) -> int:
    """Read back every region; DriverError at the first non-zero byte. Returns bytes read."""
    checked = 0
    for offset, length in regions:
        bad = _nonzero_at(fd, offset, length)
        if bad is not None:
            raise DriverError(
                f"wipe verification failed on {device}: non-zero data at byte offset {bad}; "
                "the disk may be failing or write-protected — replace it or retry a full wipe"
            )
        checked += length
    return checked


# --- metadata regions ---------------------------------------------------------------------


def _partitions(fd: int, size: int, sector: int) -> list[tuple[int, int]]:
    """``(start, end)`` byte ranges of the partitions in the GPT (either sector size) or MBR."""
    found: list[tuple[int, int]] = []
    for ss in dict.fromkeys((sector, 512, 4096)):
        header = os.pread(fd, 92, ss)
        if len(header) < 92 or header[:8] != b"EFI PART":
            continue
        entries_lba, count, entry_size = struct.unpack_from("<QII", header, 72)
        if not 0 < entry_size <= 4096:
            continue
        table = os.pread(fd, min(count, 1024) * entry_size, entries_lba * ss)
        for pos in range(0, len(table) - entry_size + 1, entry_size):
            if table[pos : pos + 16] == bytes(16):
                continue
            first, last = struct.unpack_from("<QQ", table, pos + 32)
            found.append((first * ss, (last + 1) * ss))
        break
    mbr = os.pread(fd, 512, 0)
    if len(mbr) == 512 and mbr[510:512] == b"\x55\xaa":
        for pos in range(446, 510, 16):
            kind = mbr[pos + 4]
            start, count = struct.unpack_from("<II", mbr, pos + 8)
            if kind not in (0x00, 0xEE) and count:
                found.append((start * 512, (start + count) * 512))
    return [(max(0, a), min(size, b)) for a, b in found if a < min(size, b)]


def _merge(regions: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    """``(start, end)`` ranges -> sorted, clipped, merged ``(offset, length)`` ranges."""
    merged: list[list[int]] = []
    for start, end in sorted((max(0, a), min(size, b)) for a, b in regions):
        if start >= end:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(start, end - start) for start, end in merged]


def metadata_regions(fd: int, size: int, sector: int = 512) -> list[tuple[int, int]]:
    """The ``(offset, length)`` ranges a metadata wipe zeroes (see the module docstring)."""
    ranges = [(0, METADATA_EDGE), (size - METADATA_EDGE, size)]
    for start, end in _partitions(fd, size, sector):
        ranges += [(start, start + PARTITION_EDGE), (end - PARTITION_EDGE, end)]
        ranges += [(start + m, start + m + VERIFY_SAMPLE_SIZE) for m in BTRFS_MIRRORS]
    ranges += [(m, m + VERIFY_SAMPLE_SIZE) for m in BTRFS_MIRRORS]
    return _merge(ranges, size)


def _sample_regions(size: int) -> list[tuple[int, int]]:
    """Head, tail and jittered samples spread over the whole disk, for full-wipe read-back."""
    edge = min(MIB, size)
    regions = [(0, edge), (size - edge, edge)]
    span = max(0, size - VERIFY_SAMPLE_SIZE)
    rng = random.Random()
    for i in range(VERIFY_SAMPLES):
        low, high = span * i // VERIFY_SAMPLES, span * (i + 1) // VERIFY_SAMPLES
        offset = rng.randrange(low, high + 1) // 4096 * 4096
        regions.append((offset, min(VERIFY_SAMPLE_SIZE, size - offset)))
    return _merge([(o, o + n) for o, n in regions], size)


# --- wipe ---------------------------------------------------------------------------------


def _zero_all_with_progress(fd: int, size: int, is_block: bool, progress: Progress) -> None:
    chunk = max(ZERO_CHUNK, size // 100)
    last = -1
    for offset in range(0, size, chunk):
        _write_zeros(fd, offset, min(chunk, size - offset), is_block)
        percent = (offset + chunk) * 100 // size if size else 100
        if percent != last:
            progress(min(percent, 99), "zeroing disk")
            last = percent
    os.fsync(fd)


def _full_wipe(fd: int, size: int, is_block: bool, device: Path, progress: Progress) -> str:
    """Make the whole disk read as zeros; returns the method used."""
    if is_block:
        try:
            fcntl.ioctl(fd, BLKDISCARD, struct.pack("QQ", 0, size))
            _verify(fd, _sample_regions(size), device)
            return "discard"
        except (OSError, DriverError):
            pass  # not supported, or the device does not read back zeros after discard
    else:
        try:
            _punch_hole(fd, 0, size)
            return "punch-hole"
        except OSError:
            pass
        try:
            os.ftruncate(fd, 0)
            os.ftruncate(fd, size)
            return "truncate"
        except OSError:
            pass
    _zero_all_with_progress(fd, size, is_block, progress)
    return "zero-write"


def wipe(
    device: Path | str, mode: WipeMode = "metadata", progress: Progress | None = None
) -> dict[str, Any]:
    """Wipe ``device`` and verify by reading back; returns what was done.

    ``{"mode", "method", "bytes_zeroed", "bytes_verified", "verified": True, "seconds"}``.
    """
    if mode not in ("metadata", "full"):
        raise DriverError(
            f"unknown wipe mode {mode!r}: use 'metadata' or 'full' (secure erase is not "
            "supported yet)"
        )
    report = progress or _no_progress
    device = Path(device)
    started = time.monotonic()
    with open_device(device) as (fd, size, is_block):
        report(0, f"{mode} wipe of {device}")
        if mode == "metadata":
            regions = metadata_regions(fd, size, _sector_size(fd, is_block))
            for offset, length in regions:
                zero_range(fd, offset, length, is_block)
            os.fsync(fd)
            method, zeroed, to_verify = "zero-regions", sum(n for _, n in regions), regions
        else:
            method = _full_wipe(fd, size, is_block, device, report)
            os.fsync(fd)
            zeroed, to_verify = size, _sample_regions(size)
        report(90, "verifying wipe")
        verified = _verify(fd, to_verify, device)
    report(100, f"{mode} wipe verified")
    return {
        "mode": mode,
        "method": method,
        "bytes_zeroed": zeroed,
        "bytes_verified": verified,
        "verified": True,
        "seconds": round(time.monotonic() - started, 3),
    }


def secure_erase(device: Path | str) -> dict[str, Any]:
    """Hook for firmware erase (``nvme format --ses=1`` / ATA security erase), not done yet."""
    raise DriverError(f"secure erase of {device} is not supported yet; use a 'full' wipe instead")


# --- image write --------------------------------------------------------------------------


def _check_request(url: str, sha256: str, disk_format: str) -> str:
    if disk_format != "raw":
        raise DriverError(
            f"image format {disk_format!r} is not supported by the agent yet: only 'raw'; "
            "qcow2 support lands with network boot — convert with 'qemu-img convert -O raw'"
        )
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in SUPPORTED_SCHEMES:
        raise DriverError(f"image URL {url!r}: scheme must be one of {SUPPORTED_SCHEMES}")
    expected = sha256.strip().lower()
    if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
        raise DriverError(f"image sha256 {sha256!r} is not a 64-digit hex SHA-256")
    return expected


def _too_big(what: str, size: int, device: Path, disk_size: int) -> DriverError:
    return DriverError(
        f"image is too large for the disk: {what} {size} bytes, disk {device} has "
        f"{disk_size} bytes; choose a node with a larger disk or a smaller image"
    )


def _open_url(url: str, timeout: float) -> Any:
    """The open response (``HTTPResponse``, or ``addinfourl`` for file://)."""
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise DriverError(f"cannot fetch image {url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DriverError(f"cannot fetch image {url}: {reason}") from exc
    return response


class _Stage:
    """A worker thread that applies ``work`` to chunks in order, then ``after`` (always, even
    once ``work`` has failed, so buffers flow back to the reader and nothing deadlocks)."""

    def __init__(self, work: Callable[[int, int, int], None],
                 after: Callable[[int, int, int], None], threads: int = 1) -> None:
        self.queue: queue.Queue[tuple[int, int, int] | None] = queue.Queue()
        self.error: BaseException | None = None
        self.work, self.after = work, after
        self.threads = [threading.Thread(target=self._run, daemon=True)
                        for _ in range(threads)]
        for thread in self.threads:
            thread.start()

    def close(self) -> None:
        """Let every thread drain the queue and stop."""
        for _ in self.threads:
            self.queue.put(None)
        for thread in self.threads:
            thread.join()

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self.work(*item)
                except BaseException as exc:  # handed to the caller in finish()
                    self.error = exc
            self.after(*item)



def _fill(response: Any, buffer: memoryview) -> int:
    """Read into ``buffer`` until it is full or the body ends; returns the bytes read."""
    filled = 0
    while filled < len(buffer):
        got = response.readinto(buffer[filled:])
        if not got:
            break
        filled += got
    return filled


def open_direct(device: Path) -> int | None:
    """A second, O_DIRECT descriptor for the aligned bulk of the write, or None where the
    file system refuses it (tmpfs, some overlays): then writes go through the page cache."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return None
    try:
        return os.open(device, os.O_WRONLY | flag | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None


def _stream(
    response: Any, fd: int, disk_size: int, total: int | None, is_block: bool,
    device: Path, chunk_size: int, progress: Progress, direct_fd: int | None = None,
) -> tuple[int, str]:  # fmt: skip
    """Copy the response body to the disk; returns (bytes written, sha256 hex).

    A pipeline over a few page-aligned buffers that are reused: the caller's thread reads
    into a free buffer (readinto: no allocation, no page faults per chunk), a hashing thread
    hashes it, a writing thread writes it and hands the buffer back. hashlib and the system
    calls release the GIL, so the three overlap and the write runs close to the slowest of
    download, SHA-256 and disk rather than their sum. With ``direct_fd`` full chunks are
    written with O_DIRECT (aligned buffers and offsets), bypassing the page cache; the
    unaligned tail goes through ``fd``.
    """
    digest = hashlib.sha256()
    buffers = [mmap.mmap(-1, chunk_size) for _ in range(PIPELINE_BUFFERS)]
    views = [memoryview(buffer) for buffer in buffers]
    free: queue.Queue[int] = queue.Queue()
    for index in range(len(buffers)):
        free.put(index)
    zeros = bytes(chunk_size)

    def hash_chunk(index: int, offset: int, length: int) -> None:
        digest.update(views[index][:length])

    def write_chunk(index: int, offset: int, length: int) -> None:
        view = views[index][:length]
        if not is_block and length == chunk_size and buffers[index][:length] == zeros:
            zero_range(fd, offset, length, is_block)  # keep the lab disk sparse
        elif direct_fd is not None and length % DIRECT_ALIGN == 0:
            _pwrite_all(direct_fd, view, offset)
        else:
            _pwrite_all(fd, view, offset)

    # O_DIRECT writes wait for the disk: two in flight keep it busy while one completes.
    writer = _Stage(write_chunk, lambda index, _o, _n: free.put(index),
                    threads=DIRECT_WRITERS if direct_fd is not None else 1)
    hasher = _Stage(hash_chunk, lambda *item: writer.queue.put(item))
    written, last = 0, -1
    try:
        while True:
            index = free.get()
            for stage in (hasher, writer):
                if stage.error is not None:
                    raise stage.error
            length = _fill(response, views[index])
            if not length:
                free.put(index)
                break
            if written + length > disk_size:
                raise _too_big("download exceeds", written + length, device, disk_size)
            hasher.queue.put((index, written, length))
            written += length
            if total:
                percent = min(99, written * 100 // total)
                if percent != last:
                    progress(percent, "writing image")
                    last = percent
    finally:
        hasher.close()  # it forwards every chunk to the writer first
        writer.close()
    for stage in (hasher, writer):
        if stage.error is not None:
            raise stage.error
    return written, digest.hexdigest()


def _readback_sha256(fd: int, length: int, chunk_size: int) -> str:
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, 0, length, os.POSIX_FADV_DONTNEED)
    digest = hashlib.sha256()
    offset = 0
    while offset < length:
        chunk = os.pread(fd, min(chunk_size, length - offset), offset)
        if not chunk:
            break
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()


def write_image(
    url: str,
    device: Path | str,
    sha256: str,
    size_bytes: int | None = None,
    progress: Progress | None = None,
    chunk_size: int = 4 * MIB,
    *,
    disk_format: str = "raw",
    readback: bool = False,
    timeout: float = 60.0,
    direct: bool = False,
) -> dict[str, Any]:
    """Stream a raw image from ``url`` (http, https, file) straight onto ``device``.

    Hashes while writing, fsyncs, then compares with ``sha256`` (and, with ``readback``,
    re-reads the written bytes from the disk). On any failure after the first byte is
    written, the first MiB is zeroed so the node cannot boot a half-written image.
    ``direct`` writes with O_DIRECT where the device allows it (no page cache: the memory
    of a small ramdisk is not filled with image data, and dd ``oflag=direct`` is the peer).
    """
    expected = _check_request(url, sha256, disk_format)
    report = progress or _no_progress
    device = Path(device)
    started = time.monotonic()
    with open_device(device) as (fd, disk_size, is_block):
        if size_bytes is not None and size_bytes > disk_size:
            raise _too_big("registered size", size_bytes, device, disk_size)
        report(0, f"fetching {url}")
        with _open_url(url, timeout) as response:
            length_header = response.headers.get("Content-Length")
            length = int(length_header) if length_header and length_header.isdigit() else None
            if length is not None and length > disk_size:
                raise _too_big("served size", length, device, disk_size)
            if length is not None and size_bytes is not None and length != size_bytes:
                raise DriverError(
                    f"image size mismatch: registered {size_bytes} bytes, {url} serves "
                    f"{length}; re-register the image or fix the source"
                )
            direct_fd = open_direct(device) if direct else None
            try:
                written, actual = _stream(
                    response, fd, disk_size, length or size_bytes, is_block, device,
                    chunk_size, report, direct_fd,
                )  # fmt: skip
                os.fsync(fd)
                if actual != expected:
                    raise DriverError(
                        f"image checksum mismatch: expected {expected}, got {actual}; "
                        "re-register the image or fix the source"
                    )
                if readback:
                    report(99, "reading image back")
                    on_disk = _readback_sha256(fd, written, chunk_size)
                    if on_disk != expected:
                        raise DriverError(
                            f"image read-back mismatch on {device}: wrote {expected}, "
                            f"read {on_disk}; the disk may be failing"
                        )
            except BaseException as exc:
                zero_range(fd, 0, min(HEAD_ON_FAILURE, disk_size), is_block)
                os.fsync(fd)
                if isinstance(exc, (OSError, http.client.HTTPException)):
                    raise DriverError(f"image write to {device} failed: {exc}") from exc
                raise
            finally:
                if direct_fd is not None:
                    os.close(direct_fd)
    seconds = time.monotonic() - started
    report(100, "image written and verified")
    return {
        "url": url,
        "device": str(device),
        "bytes_written": written,
        "sha256": actual,
        "verified": True,
        "readback": readback,
        "direct": direct_fd is not None,
        "seconds": round(seconds, 3),
        "mib_per_s": round(written / MIB / seconds, 1) if seconds > 0 else None,
    }
