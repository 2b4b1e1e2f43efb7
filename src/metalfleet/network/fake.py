"""The ``fake`` switch: an in-memory port table, for control-plane tests and benchmarks.

Every real dialect is proven with packets (tests/integration/network). ``driver_info`` may
ask it to misbehave: ``{"fail": "set"}`` refuses every move, ``{"lie": true}`` accepts moves
and keeps the old network (what the read-back check exists for).
"""

from __future__ import annotations

import threading
from typing import Any

from metalfleet.network.switch import PortState, Segment, SwitchDriver, SwitchError

_ports: dict[tuple[str, str], int | None] = {}
_lock = threading.Lock()


class FakeSwitch(SwitchDriver):
    def __init__(self, name: str, driver_info: dict[str, Any] | None = None) -> None:
        self.name = name
        self.driver_info = dict(driver_info or {})

    def set_port(self, port: str, segment: Segment) -> None:
        if self.driver_info.get("fail") == "set":
            raise SwitchError(f"fake switch {self.name} told to refuse moves")
        if self.driver_info.get("lie"):
            return
        with _lock:
            _ports[(self.name, port)] = segment.vlan

    def port_state(self, port: str) -> PortState:
        with _lock:
            return PortState(port, _ports.get((self.name, port)))

    @staticmethod
    def reset() -> None:
        with _lock:
            _ports.clear()

    @staticmethod
    def set_actual(switch: str, port: str, vlan: int | None) -> None:
        """What someone at the switch's console did behind metalfleet's back (drift)."""
        with _lock:
            _ports[(switch, port)] = vlan
