"""The lab's shortcuts, and where they are allowed: nowhere but a ``--lab`` process.

The lab runs the real agent code against synthetic hardware roots on the conductor's own
disk and deploys ``file://`` images from the conductor's own file system. Anywhere else the
same fields would let an API caller make the conductor read or zero any file on its host.
So every request that sets one is checked here, before anything is stored:

- the ``lab`` hardware type, ``driver_info.hardware_root`` / ``disk`` and ``file://`` image
  locations are refused (422) unless the process was started with ``--lab``
  (``AppContext.lab`` is set, by the lab plug-in only);
- even then only admins may set them, and only for paths inside the lab's own data folder
  (``..`` and symlinks are resolved first).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from metalfleet.core.errors import ValidationError
from metalfleet.inventory.schemas import Role
from metalfleet.runtime import LabAllowance

if TYPE_CHECKING:  # tokens imports resources, which imports this module
    from metalfleet.inventory.tokens import Principal

LAB_HARDWARE_TYPE = "lab"
# driver_info keys that name paths on the conductor's host (the agent-local driver's).
PATH_KEYS = ("hardware_root",)


@dataclass(frozen=True)
class LabGate:
    """What one caller may do with the lab's shortcuts in this process."""

    allowance: LabAllowance | None = None
    admin: bool = False

    @classmethod
    def closed(cls) -> LabGate:
        return cls()

    @classmethod
    def of(cls, allowance: LabAllowance | None, principal: Principal) -> LabGate:
        """The gate for an API or dashboard caller in this process."""
        return cls(allowance, admin=principal.role is Role.ADMIN)

    def _refuse_unless_open(self, what: str) -> LabAllowance:
        if self.allowance is None:
            raise ValidationError(
                f"{what} is a lab shortcut: it is accepted only by a metalfleet started with "
                "--lab (the emulated fleet), never in production; use the redfish or ipmi "
                "hardware type and http(s):// image locations")
        if not self.admin:
            raise ValidationError(f"{what} is a lab shortcut that only an admin may set")
        return self.allowance

    def _inside(self, allowance: LabAllowance, path: str | Path, what: str) -> None:
        if not allowance.contains(path):
            raise ValidationError(
                f"{what} {str(path)!r} is outside the lab's data folder {allowance.root}; "
                "lab paths must stay inside it")

    def check_local_switch(self) -> None:
        """A switch driven on the conductor's own host (or with a key file on it)."""
        self._refuse_unless_open("a switch managed on the conductor's host (no address, "
                                 "netns or key_file)")

    def check_node(self, hardware_type: str | None, driver_info: dict[str, Any] | None,
                   *, current_type: str | None = None) -> None:
        """Refuse a node that would use the lab's hardware type or paths, unless allowed."""
        info = driver_info or {}
        kind = hardware_type or current_type
        paths = [key for key in PATH_KEYS if key in info]
        if kind != LAB_HARDWARE_TYPE and not paths:
            return
        if kind == LAB_HARDWARE_TYPE and (hardware_type or driver_info is not None):
            allowance = self._refuse_unless_open("the lab hardware type")
        elif paths:
            allowance = self._refuse_unless_open(f"driver_info.{paths[0]}")
        else:
            return
        for key in paths:
            self._inside(allowance, str(info[key]), f"driver_info.{key}")
        disk = info.get("disk")
        if disk is not None and ".." in Path(str(disk)).parts:
            raise ValidationError(f"driver_info.disk {disk!r} must stay inside the hardware root")

    def check_image_location(self, location: str | None) -> None:
        """Refuse a ``file://`` image location unless allowed and inside the lab folder."""
        if not location or not location.startswith("file://"):
            return
        allowance = self._refuse_unless_open("a file:// image location")
        parts = urlsplit(location)
        if parts.netloc not in ("", "localhost"):
            raise ValidationError(f"{location!r}: a file:// location names a local path only")
        self._inside(allowance, unquote(parts.path), "the image file")
