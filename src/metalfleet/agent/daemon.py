"""The agent's conversation with metalfleet: look up (MACs and the boot secret from the
kernel command line), heartbeat, run commands.

It runs in the deploy ramdisk (stdlib only). Commands run in a worker thread so heartbeats
keep flowing during a long image write; the heartbeat carries the command's progress and,
at the end, its result or error.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from metalfleet.agent.acceptance import run_acceptance
from metalfleet.agent.disk import wipe, write_image
from metalfleet.agent.hardware_root import HardwareRoot
from metalfleet.agent.inventory import collect_inventory
from metalfleet.core.errors import MetalfleetError

log = logging.getLogger("metalfleet.agent")
AGENT_VERSION = "1"


FINISHED = ("done", "failed")


class ApiError(Exception):
    def __init__(self, status: int, detail: str, retry_after: float = 0.0) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.retry_after = retry_after


def call(url: str, body: dict[str, Any], headers: dict[str, str] | None = None,
         timeout: float = 15.0) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer: dict[str, Any] = json.loads(response.read() or b"{}")
            return answer
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        try:
            retry_after = float(exc.headers.get("Retry-After") or 0)
        except ValueError:
            retry_after = 0.0
        raise ApiError(exc.code, detail, min(retry_after, 120.0)) from exc


def default_device(root: HardwareRoot, inventory: dict[str, Any]) -> Path:
    """The root disk: the smallest disk of at least 4 GiB (as Ironic picks it)."""
    disks = [d for d in inventory.get("disks", []) if d.get("size_bytes", 0) >= 4 * 1024**3]
    if not disks:
        disks = list(inventory.get("disks", []))
    if not disks:
        raise MetalfleetError("the node has no disk to work on")
    chosen = min(disks, key=lambda d: (d["size_bytes"], d["name"]))
    return root.resolve(str(chosen["path"]).lstrip("/"))


class Agent:
    def __init__(self, api_url: str, root: HardwareRoot, *, stop: threading.Event | None = None,
                 lookup_retry_s: float = 3.0, discover: bool = False,
                 boot_mac: str | None = None, boot_secret: str | None = None) -> None:
        self.api_url = api_url.rstrip("/")
        # This boot's one-time secret from the kernel command line; never logged.
        self.boot_secret = boot_secret
        # Discovery mode (an unknown machine): the lookup enrolls it; without a token
        # there is nothing to do and serve() returns so the ramdisk powers off.
        self.discover = discover
        self.boot_mac = boot_mac
        self.root = root
        self.stop = stop or threading.Event()
        self.lookup_retry_s = lookup_retry_s
        self.inventory: dict[str, Any] = {}
        self.node = ""
        self.token = ""
        self.interval = 2.0
        self.status: dict[str, Any] = {}
        self.worker: threading.Thread | None = None

    def lookup(self) -> None:
        self.inventory = collect_inventory(self.root)
        macs = [nic["mac"] for nic in self.inventory.get("nics", []) if nic.get("mac")]
        while not self.stop.is_set():
            try:
                body: dict[str, Any] = {"macs": macs, "inventory": self.inventory,
                                        "agent_version": AGENT_VERSION}
                if self.boot_secret:
                    body["boot_secret"] = self.boot_secret
                if self.discover:
                    body.update(discover=True, boot_mac=self.boot_mac)
                answer = call(f"{self.api_url}/v1/agent/lookup", body)
                self.node, self.token = answer.get("node") or "", answer.get("token") or ""
                self.interval = float(answer.get("heartbeat_interval_s", 2.0))
                log.info("looked up as %s", self.node or "(not named)")
                return
            except ApiError as exc:
                log.warning("lookup refused (%s); retrying", exc)
                self.stop.wait(max(self.lookup_retry_s, exc.retry_after))
            except OSError as exc:
                log.warning("lookup failed (%s); retrying", exc)
                self.stop.wait(self.lookup_retry_s)

    def _commands(self) -> dict[str, Callable[[dict[str, Any], Any], dict[str, Any]]]:
        def device(args: dict[str, Any]) -> Path:
            if args.get("device"):
                return self.root.resolve(str(args["device"]).lstrip("/"))
            return default_device(self.root, self.inventory)

        return {
            "write_image": lambda a, p: write_image(
                a["url"], device(a), a["sha256"], a.get("size_bytes"), p,
                disk_format=a.get("disk_format", "raw"), direct=bool(a.get("direct"))),
            "wipe": lambda a, p: wipe(device(a), a.get("mode", "metadata"), p),
            "burn_in": lambda a, p: run_acceptance(self.root, device(a), a.get("plan"),
                                                   float(a.get("seconds", 10)), progress=p),
        }

    def _run(self, command: dict[str, Any]) -> None:
        def progress(percent: int, step: str) -> None:
            self.status.update(percent=percent, step=step)

        try:
            handler = self._commands().get(command["name"])
            if handler is None:
                raise MetalfleetError(f"this agent does not know the command {command['name']}")
            result = handler(command["args"], progress)
            self.status.update(status="done", percent=100, result=result)
        except (MetalfleetError, OSError, KeyError, ValueError) as exc:
            detail = getattr(exc, "detail", None) or str(exc)
            self.status.update(status="failed", error=detail)

    def heartbeat_once(self) -> None:
        sent = dict(self.status)
        answer = call(f"{self.api_url}/v1/agent/heartbeat/{self.node}", sent,
                      headers={"X-Agent-Token": self.token})
        if sent.get("status") in FINISHED and self.status.get("status") == sent["status"]:
            self.status = {}  # the outcome is recorded: report nothing until the next command
        command = answer.get("command")
        busy = self.worker is not None and self.worker.is_alive()
        if command and not busy:
            self.status = {"command_id": command["id"], "status": "running", "percent": 0,
                           "step": f"starting {command['name']}"}
            self.worker = threading.Thread(target=self._run, args=(command,), daemon=True)
            self.worker.start()

    def serve(self) -> None:
        """Look up, then heartbeat until stopped; look up again if the token goes stale."""
        self.lookup()
        if self.discover and not self.token:
            log.info("discovered as %s; nothing to do", self.node)
            return
        while not self.stop.is_set():
            try:
                self.heartbeat_once()
            except ApiError as exc:
                if exc.status == 401:
                    self.lookup()
                    continue
                if exc.status == 409 and self.status.get("status") in FINISHED:
                    self.status = {}  # a finished command the server has moved past
                log.warning("heartbeat refused: %s", exc)
            except OSError as exc:
                log.warning("heartbeat failed: %s", exc)
            self.stop.wait(self.interval)
