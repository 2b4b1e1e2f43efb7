"""``metalfleet-agent``: the node-side program (deploy ramdisk and deployed OS).

One subcommand per action, each printing one JSON document on stdout; progress goes to
stderr. Exit status 0 on success, 1 when the action failed (the error is printed as JSON
on stderr: ``{"error": ..., "title": ...}``), 2 on bad usage (argparse).

A ``daemon`` subcommand (heartbeat to the conductor, run commands it hands out) will be
added to :data:`COMMANDS`; every handler already takes the parsed arguments and returns
a JSON-serialisable result, so the daemon can dispatch to the same functions.

Stdlib only: this module runs inside the deploy ramdisk.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from metalfleet.agent.burnin import run_burn_in
from metalfleet.agent.disk import wipe, write_image
from metalfleet.agent.hardware_root import HardwareRoot
from metalfleet.agent.inventory import collect_inventory
from metalfleet.core.errors import DriverError

Handler = Callable[[argparse.Namespace], dict[str, Any]]


def _progress(percent: int, step: str) -> None:
    print(f"[{percent:3d}%] {step}", file=sys.stderr, flush=True)


def cmd_inventory(args: argparse.Namespace) -> dict[str, Any]:
    return collect_inventory(HardwareRoot(args.root))


def cmd_wipe(args: argparse.Namespace) -> dict[str, Any]:
    return wipe(Path(args.device), args.mode, _progress)


def cmd_write_image(args: argparse.Namespace) -> dict[str, Any]:
    return write_image(
        args.url, Path(args.device), args.sha256, args.size, _progress,
        disk_format=args.format, readback=args.readback,
    )  # fmt: skip


def cmd_burn_in(args: argparse.Namespace) -> dict[str, Any]:
    return run_burn_in(HardwareRoot(args.root), Path(args.device), args.seconds, progress=_progress)


def cmd_boot(args: argparse.Namespace) -> dict[str, Any]:
    from metalfleet.agent.boot import run

    cmdline = Path(args.cmdline).read_text() if args.cmdline else ""
    return run(HardwareRoot(args.root), cmdline)


def cmd_monitor(args: argparse.Namespace) -> dict[str, Any]:
    import logging

    from metalfleet.agent.monitor import serve

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    token = Path(args.token_file).read_text().strip() if args.token_file else args.token
    serve(args.api, token, args.node, HardwareRoot(args.root), interval_s=args.interval,
          host=args.bind, port=args.exporter_port)
    return {"stopped": True}


COMMANDS: dict[str, Handler] = {
    "boot": cmd_boot,
    "inventory": cmd_inventory,
    "wipe": cmd_wipe,
    "write-image": cmd_write_image,
    "burn-in": cmd_burn_in,
    "monitor": cmd_monitor,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="metalfleet-agent", description="metalfleet node agent")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    inventory = sub.add_parser("inventory", help="print the hardware inventory as JSON")
    inventory.add_argument("--root", default="/", help="hardware root (default /)")

    wipe_cmd = sub.add_parser("wipe", help="wipe a disk and verify it reads back zeros")
    wipe_cmd.add_argument("--device", required=True)
    wipe_cmd.add_argument("--mode", choices=("metadata", "full"), default="metadata")

    image = sub.add_parser("write-image", help="stream a raw image onto a disk and verify")
    image.add_argument("--url", required=True, help="http://, https:// or file:// URL")
    image.add_argument("--device", required=True)
    image.add_argument("--sha256", required=True)
    image.add_argument("--size", type=int, default=None, help="expected image size in bytes")
    image.add_argument("--format", default="raw", help="disk format (only raw for now)")
    image.add_argument("--readback", action="store_true", help="re-read and hash the disk")

    boot = sub.add_parser("boot", help="ramdisk start: report the inventory to the callback "
                          "named on the kernel command line")
    boot.add_argument("--cmdline", default="/proc/cmdline", help="kernel command line file")
    boot.add_argument("--root", default="/")

    burn = sub.add_parser("burn-in", help="short CPU, memory and disk acceptance test")
    burn.add_argument("--device", required=True)
    burn.add_argument("--seconds", type=float, default=2.0)
    burn.add_argument("--root", default="/")

    monitor = sub.add_parser("monitor", help="run the in-band health checks every interval, "
                             "report them to metalfleet and serve Prometheus metrics")
    monitor.add_argument("--api", required=True, help="metalfleet API URL")
    token = monitor.add_mutually_exclusive_group(required=True)
    token.add_argument("--token", help="this node's monitor credential (visible in ps: "
                       "prefer --token-file)")
    token.add_argument("--token-file", help="file holding this node's monitor credential "
                       "(`metalfleet node monitor-credential NAME --out FILE`); never put "
                       "an operator token on a tenant's machine")
    monitor.add_argument("--node", required=True, help="this node's name in metalfleet")
    monitor.add_argument("--interval", type=float, default=30.0, help="seconds between checks")
    monitor.add_argument("--root", default="/")
    monitor.add_argument("--exporter-port", type=int, default=9400,
                         help="Prometheus exporter port (default 9400, as dcgm-exporter)")
    monitor.add_argument("--bind", default="0.0.0.0", help="exporter bind address")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = COMMANDS[args.command](args)
    except DriverError as exc:
        print(json.dumps({"error": exc.detail, "title": exc.title}), file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
