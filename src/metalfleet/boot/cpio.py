"""A minimal writer for the cpio "newc" format the Linux kernel unpacks as an initramfs."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO


def _header(ino: int, mode: int, size: int, name: bytes, nlink: int = 1) -> bytes:
    fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, len(name) + 1, 0]
    return b"070701" + b"".join(f"{value:08x}".encode() for value in fields)


def _pad(out: BinaryIO, length: int) -> None:
    out.write(b"\0" * (-length % 4))


def _entry(out: BinaryIO, ino: int, mode: int, name: str, data: bytes) -> None:
    encoded = name.encode()
    head = _header(ino, mode, len(data), encoded) + encoded + b"\0"
    out.write(head)
    _pad(out, len(head))
    out.write(data)
    _pad(out, len(data))


def write_newc(tree: Path, out: BinaryIO) -> int:
    """Archive every file, directory and symlink under ``tree``; returns the entry count."""
    count = 0
    for directory, dirs, files in os.walk(tree):
        dirs.sort()
        base = Path(directory)
        for name in [*sorted(dirs), *sorted(files)]:
            path = base / name
            info = path.lstat()
            relative = str(path.relative_to(tree))
            if stat.S_ISLNK(info.st_mode):
                data = os.readlink(path).encode()
            elif stat.S_ISREG(info.st_mode):
                data = path.read_bytes()
            else:
                data = b""
            count += 1
            _entry(out, count, info.st_mode, relative, data)
    _entry(out, 0, 0, "TRAILER!!!", b"")
    return count
