"""What the agent does when the deploy ramdisk boots it: find out who it is talking to from
the kernel command line, report the hardware inventory, then do what the command line says.

Kernel parameters (set by the iPXE script or by a direct kernel boot):

- ``metalfleet.api=URL``  the API to look up and heartbeat with; the agent then serves
  commands until the node is powered off or rebooted by its BMC
- ``metalfleet.callback=URL``  where to POST the inventory (JSON) once booted
- ``metalfleet.after=poweroff|reboot|shell``  what to do afterwards (default: poweroff)
- ``metalfleet.boot_secret=SECRET``  this boot's one-time secret (the node's iPXE script
  puts it here): the agent's lookup proves with it that it runs on the node that booted
- ``metalfleet.mode=discover`` and ``metalfleet.bootif=MAC``  an unknown machine: the
  lookup enrolls it as a new node and the agent returns (then powers off)

The long-running conductor protocol (heartbeats, commands) builds on this; the first report
is the same either way. Stdlib only: this runs in the ramdisk.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from typing import Any

from metalfleet.agent.hardware_root import HardwareRoot
from metalfleet.agent.inventory import collect_inventory


def parse_cmdline(text: str) -> dict[str, str]:
    """The ``metalfleet.*`` parameters of a kernel command line, without the prefix."""
    params: dict[str, str] = {}
    for word in text.split():
        key, sep, value = word.partition("=")
        if key.startswith("metalfleet.") and sep:
            params[key.removeprefix("metalfleet.")] = value
    return params


def post_json(url: str, body: dict[str, Any], *, attempts: int = 10, timeout: float = 10.0,
              delay: float = 1.0) -> int:
    """POST ``body``; retry while the network comes up. Returns the HTTP status."""
    data = json.dumps(body).encode()
    last: Exception | None = None
    for attempt in range(attempts):
        request = urllib.request.Request(url, data=data, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return int(response.status)
        except (urllib.error.URLError, OSError) as exc:
            last = exc
            time.sleep(delay * min(2 ** attempt, 8))
    raise OSError(f"could not reach {url} after {attempts} attempts: {last}")


def run(root: HardwareRoot, cmdline: str) -> dict[str, Any]:
    params = parse_cmdline(cmdline)
    started = time.monotonic()
    inventory = collect_inventory(root)
    took = round(time.monotonic() - started, 3)
    report: dict[str, Any] = {
        "inventory": inventory,
        "agent": {"python": sys.version.split()[0], "inventory_s": took},
    }
    api = params.get("api")
    if api:
        from metalfleet.agent.daemon import Agent

        Agent(api, root, discover=params.get("mode") == "discover",
              boot_mac=params.get("bootif"), boot_secret=params.get("boot_secret")).serve()
    callback = params.get("callback")
    if callback:
        report["callback_status"] = post_json(callback, report)
    report["after"] = params.get("after", "poweroff")
    return report
