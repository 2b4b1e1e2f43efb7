"""The lab's default OS image: a small raw disk image written by the real image-write path."""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

LAB_IMAGE_NAME = "lab-ubuntu-22.04"
LAB_IMAGE_FILE = "lab-ubuntu-22.04.raw"
LAB_IMAGE_SIZE = 16 * 1024 * 1024


def _protective_mbr() -> bytes:
    mbr = bytearray(512)
    # One partition of type 0xEE covering the disk, as GPT disks carry.
    mbr[446:462] = struct.pack("<BBBBBBBBII", 0, 0, 2, 0, 0xEE, 0xFF, 0xFF, 0xFF, 1,
                               LAB_IMAGE_SIZE // 512 - 1)
    mbr[510:512] = b"\x55\xaa"
    return bytes(mbr)


def _gpt_header() -> bytes:
    header = bytearray(512)
    fields = struct.pack("<8sIIIIQQQQ16sQIII", b"EFI PART", 0x00010000, 92, 0, 0, 1,
                         LAB_IMAGE_SIZE // 512 - 1, 34, LAB_IMAGE_SIZE // 512 - 34,
                         b"metalfleet-lab!!", 2, 128, 128, 0)
    header[: len(fields)] = fields
    crc = zlib.crc32(bytes(header[:92])) & 0xFFFFFFFF
    header[16:20] = struct.pack("<I", crc)
    return bytes(header)


def build_lab_image(images_dir: Path) -> tuple[Path, str, int]:
    """Write the image once (deterministic content); return its path, sha256 and size."""
    path = images_dir / LAB_IMAGE_FILE
    if not path.exists() or path.stat().st_size != LAB_IMAGE_SIZE:
        images_dir.mkdir(parents=True, exist_ok=True)
        body = bytearray(LAB_IMAGE_SIZE)
        body[0:512] = _protective_mbr()
        body[512:1024] = _gpt_header()
        # Recognisable content through the image, so a read-back proves the write.
        for offset in range(1024 * 1024, LAB_IMAGE_SIZE, 1024 * 1024):
            marker = f"metalfleet lab image block {offset // (1024 * 1024)}\n".encode()
            body[offset:offset + len(marker)] = marker
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(bytes(body))
        tmp.replace(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return path, digest, path.stat().st_size
