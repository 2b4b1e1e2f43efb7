"""The lab's exporters: one HTTP server on 127.0.0.1 for every lab node's agent metrics.

A real node runs ``metalfleet-agent monitor`` (exporter on port 9400). A lab node has no
process of its own, so one server serves ``/nodes/<name>/metrics`` for all of them: the same
exporter code (agent/exporter.py) over the node's synthetic hardware root, with the
findings of the agent's in-band checks. Metrics are computed when scraped (a few ms a node),
so ``--lab 64`` costs nothing between scrapes.

Each lab node's ``driver_info.exporter`` names its target (``{"address": "127.0.0.1:PORT",
"metrics_path": "/nodes/<name>/metrics"}``); the Prometheus HTTP SD lists it with
``__metrics_path__`` (observability/discovery.py). The port is kept in ``lab/lab.json`` and
reused across restarts.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from metalfleet.agent import exporter
from metalfleet.agent.hardware_root import HardwareRoot
from metalfleet.db import models as m
from metalfleet.db.session import Database
from metalfleet.lab.synthetic_hardware import MARKER
from metalfleet.observability.discovery import EXPORTER_KEY

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_PATH = re.compile(r"^/nodes/([^/]+)/metrics$")


def metrics_path(name: str) -> str:
    return f"/nodes/{name}/metrics"


class LabExporters:
    """Serves the metrics of every node root under ``roots_dir`` (``<roots_dir>/<name>``)."""

    def __init__(self, roots_dir: Path, *, port: int = 0, host: str = HOST,
                 checks: bool = True) -> None:
        self.roots_dir = roots_dir
        self.checks = checks
        self.server = exporter.MetricsServer(self.metrics, host=host, port=port).start()

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def address(self) -> str:
        return f"{self.server.host}:{self.server.port}"

    def stop(self) -> None:
        self.server.stop()

    def metrics(self, path: str) -> str | None:
        match = _PATH.match(path)
        if match is None or not _NAME.match(match.group(1)):
            return None
        root_dir = self.roots_dir / match.group(1)
        if not root_dir.is_dir():
            return None
        root = HardwareRoot(root_dir)
        findings: list[dict[str, Any]] = []
        checks_run: list[str] = []
        last_run = None
        if self.checks:
            from metalfleet.agent.monitor import run_checks

            report = run_checks(root, _expected(root_dir))
            findings, checks_run, last_run = report.findings, report.checks_run, report.at
        return exporter.collect(root, findings=findings, checks_run=checks_run,
                                last_run=last_run)


def _expected(root_dir: Path) -> dict[str, Any] | None:
    """What the lab built the node with (its spec in the root's marker): the counts the
    checks compare against, as a real node's inspected inventory would give them."""
    try:
        spec = json.loads((root_dir / MARKER).read_text(encoding="utf-8"))
        return {"gpu_count": int(spec["gpus"]["count"]), "ib_ports": int(spec["ib"]["ports"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def start_lab_exporters(data_dir: Path) -> LabExporters:
    """Start the server on the port of the last run (if free), remembered in lab.json."""
    lab_dir = data_dir / "lab"
    lab_dir.mkdir(parents=True, exist_ok=True)
    config_file = lab_dir / "lab.json"
    config = json.loads(config_file.read_text()) if config_file.exists() else {}
    try:
        exporters = LabExporters(lab_dir / "nodes", port=int(config.get("exporter_port", 0)))
    except OSError:
        log.warning("lab exporter port %s is taken; moving to a new port",
                    config.get("exporter_port"))
        exporters = LabExporters(lab_dir / "nodes")
    config = json.loads(config_file.read_text()) if config_file.exists() else {}
    config_file.write_text(json.dumps({**config, "exporter_port": exporters.port}))
    return exporters


def publish(db: Database, address: str, names: Iterable[str]) -> int:
    """Point the named nodes' ``driver_info.exporter`` at this server; returns nodes changed."""
    wanted = set(names)
    changed = 0
    with db.session() as session:
        for node in session.scalars(select(m.Node).where(m.Node.name.in_(wanted))):
            target = {"address": address, "metrics_path": metrics_path(node.name)}
            if (node.driver_info or {}).get(EXPORTER_KEY) != target:
                node.driver_info = {**(node.driver_info or {}), EXPORTER_KEY: target}
                changed += 1
    return changed
