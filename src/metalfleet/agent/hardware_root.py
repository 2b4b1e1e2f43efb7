"""The filesystem the agent reads hardware facts from.

On a node this is ``/`` (procfs and sysfs); in the lab it is a synthetic tree built by
:mod:`metalfleet.lab.synthetic_hardware`, so the same parsing code runs against both.
Every reader returns ``None`` instead of raising when a file is absent or unreadable:
sysfs is full of attributes that exist only on some kernels, or that fail to read (the
``speed`` of a link that is down, ``product_serial`` for a non-root user).

Stdlib only: this module runs inside the deploy ramdisk.
"""

from __future__ import annotations

import os
import re
from pathlib import Path


class HardwareRoot:
    """A root directory under which ``proc/``, ``sys/``, ``dev/`` and ``run/`` are looked up."""

    def __init__(self, path: str | os.PathLike[str] = "/") -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"HardwareRoot({str(self.path)!r})"

    @property
    def is_host(self) -> bool:
        """True when this root is the running machine's own ``/`` (not a synthetic tree)."""
        try:
            return self.path.resolve() == Path("/")
        except OSError:
            return False

    def resolve(self, relative: str | os.PathLike[str]) -> Path:
        """``"sys/class/net"`` (or ``"/sys/class/net"``) -> the path under this root."""
        text = os.fspath(relative).lstrip("/")
        return self.path / text if text else self.path

    def exists(self, relative: str) -> bool:
        return self.resolve(relative).exists()

    def read_text(self, relative: str) -> str | None:
        """The file's text with surrounding whitespace stripped, or None."""
        try:
            return self.resolve(relative).read_text(encoding="utf-8", errors="replace").strip()
        except (OSError, ValueError):
            return None

    def read_int(self, relative: str, base: int = 10) -> int | None:
        """The file parsed as an integer (``base=16`` accepts ``0x10de`` and ``10de``), or None."""
        text = self.read_text(relative)
        if not text:
            return None
        try:
            return int(text.split()[0], base)
        except ValueError:
            return None

    def list_dir(self, relative: str) -> list[str] | None:
        """Entry names of a directory in natural order (``mlx5_2`` < ``mlx5_10``), or None."""
        try:
            return sorted(os.listdir(self.resolve(relative)), key=_natural_key)
        except OSError:
            return None

    def link_name(self, relative: str) -> str | None:
        """The last component of a symlink's target (sysfs ``driver`` links), or None."""
        try:
            return os.path.basename(os.readlink(self.resolve(relative)))
        except OSError:
            return None


def _natural_key(name: str) -> list[tuple[int, int | str]]:
    return [(1, int(part)) if part.isdigit() else (0, part) for part in re.split(r"(\d+)", name)]
