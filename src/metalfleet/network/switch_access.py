"""How metalfleet reaches a switch: its driver, address and credentials (encrypted at rest).

``PUT /v1/switches/{name}/access`` sets them (operators); the password is stored encrypted
with the credential key, like BMC passwords, and never returned. :func:`driver_for` builds
the switch's driver for the conductor.

Drivers (``driver``) and what ``driver_info`` may hold:

* ``none``: not managed; node ports stay where they are cabled.
* ``linux-bridge``: a bridge per network on a Linux switch (network/linux_bridge.py), over
  SSH to ``address`` (``port``, the password, ``sudo``: prefix ``sudo -n``). An empty
  ``address`` (this host, ``netns``: inside that network namespace) and ``key_file`` (a path
  on the conductor) are lab shortcuts: on a production conductor they would let an operator
  rewire the conductor's own interfaces or point it at its own files, so they are accepted
  only as the lab's shortcuts are (``--lab``, admins; inventory/lab_shortcuts.py) and the
  conductor re-checks at run time (:func:`allow_local_switches`, called by the lab only).
* ``linux-bridge-vlan``: the same over one VLAN-filtering bridge (``bridge``, default br0).
* ``fake``: in memory (network/fake.py), for tests and benchmarks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from metalfleet.core.errors import ValidationError
from metalfleet.db import models as m
from metalfleet.inventory.lab_shortcuts import LabGate
from metalfleet.network.fake import FakeSwitch
from metalfleet.network.linux_bridge import BridgePerNetwork, VlanFilteringBridge
from metalfleet.network.switch import SwitchDriver, SwitchError
from metalfleet.network.transport import LocalTransport, SshTransport, Transport
from metalfleet.secrets import CredentialCipher

DRIVERS = ("none", "linux-bridge", "linux-bridge-vlan", "fake")
DRIVER_INFO_KEYS = {"netns", "port", "key_file", "sudo", "bridge", "device_type", "fail", "lie"}
_local = {"allowed": False}


def allow_local_switches() -> None:
    """The lab plug-in's call: this process may drive switches on its own host."""
    _local["allowed"] = True


def _is_local(driver: str, address: str, info: Mapping[str, Any]) -> bool:
    return driver in ("linux-bridge", "linux-bridge-vlan") and (
        not address or "key_file" in info or "netns" in info)


def set_access(session: Session, cipher: CredentialCipher, switch: m.Switch, *, driver: str,
               address: str = "", username: str | None = None,
               password: str | None = None, keep_password: bool = False,
               driver_info: Mapping[str, Any] | None = None,
               lab: LabGate | None = None) -> m.Switch:
    """Replace how the switch is reached; ``keep_password`` keeps the stored one."""
    if driver not in DRIVERS:
        raise ValidationError(f"switch driver {driver!r} is not one of {', '.join(DRIVERS)}")
    info = dict(driver_info or {})
    unknown = sorted(set(info) - DRIVER_INFO_KEYS)
    if unknown:
        raise ValidationError(f"driver_info keys {unknown} are not known; allowed: "
                              f"{sorted(DRIVER_INFO_KEYS)}")
    if driver in ("linux-bridge", "linux-bridge-vlan") and address and not username:
        raise ValidationError("an SSH-managed switch needs a username")
    if _is_local(driver, address, info):
        (lab or LabGate.closed()).check_local_switch()
    switch.driver, switch.address, switch.username = driver, address, username
    switch.driver_info = info
    if not keep_password:
        switch.password_encrypted = cipher.encrypt(password) if password else None
    session.flush()
    return switch


def access_out(switch: m.Switch) -> dict[str, Any]:
    """What the API shows: everything but the password, which is only said to exist."""
    return {"switch": switch.name, "driver": switch.driver, "address": switch.address,
            "username": switch.username, "has_password": switch.password_encrypted is not None,
            "driver_info": dict(switch.driver_info or {})}


def _transport(switch: m.Switch, cipher: CredentialCipher) -> Transport:
    info = switch.driver_info or {}
    if _is_local(switch.driver, switch.address, info) and not _local["allowed"]:
        raise SwitchError(f"switch {switch.name} is managed on the conductor's own host (or "
                          "with a key file on it): a lab shortcut, and this conductor was not "
                          "started with --lab")
    prefix = ("sudo", "-n") if info.get("sudo") else ()
    if not switch.address:
        return LocalTransport(netns=info.get("netns"), prefix=prefix)
    password = cipher.decrypt(switch.password_encrypted) if switch.password_encrypted else None
    return SshTransport(host=switch.address, port=int(info.get("port", 22)),
                        username=switch.username or "", password=password,
                        key_file=info.get("key_file"),
                        device_type=str(info.get("device_type", "linux")), prefix=prefix)


def driver_for(switch: m.Switch, cipher: CredentialCipher) -> SwitchDriver:
    """The switch's driver; SwitchError for an unmanaged one (the caller checks first)."""
    if switch.driver == "fake":
        return FakeSwitch(switch.name, switch.driver_info)
    if switch.driver == "linux-bridge":
        return BridgePerNetwork(_transport(switch, cipher))
    if switch.driver == "linux-bridge-vlan":
        bridge = str((switch.driver_info or {}).get("bridge", "br0"))
        return VlanFilteringBridge(_transport(switch, cipher), bridge)
    raise SwitchError(f"switch {switch.name} is not managed by metalfleet (driver "
                      f"{switch.driver!r}); set its access first: PUT /v1/switches/"
                      f"{switch.name}/access")
