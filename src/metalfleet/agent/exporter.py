"""The agent's Prometheus exporter: node and GPU metrics of a hardware root, over HTTP.

Names follow the exporters the shipped rules (observability/rules.py) and dashboards were
written for, so one rule set works whether a node runs this agent or node_exporter + DCGM:
GPUs as dcgm-exporter (agent/gpu_metrics.py), the node as node_exporter
(agent/node_metrics.py), and the agent's in-band checks as
``metalfleet_check_failed{check,component,severity} 1`` per finding (agent/health.py).
:class:`MetricsServer` serves any path -> text mapping (``metalfleet-agent monitor`` serves
``/metrics``; the lab one ``/nodes/<name>/metrics`` per lab node).

Stdlib only: this module runs on deployed nodes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from metalfleet.agent.gpu_metrics import gpu_families
from metalfleet.agent.hardware_root import HardwareRoot
from metalfleet.agent.node_metrics import node_families
from metalfleet.agent.prom_text import Family, render

log = logging.getLogger("metalfleet.agent.exporter")

DEFAULT_PORT = 9400  # dcgm-exporter's port: the SD lists the agent there
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def check_families(findings: Iterable[Mapping[str, Any]] | None,
                   checks_run: Iterable[str] = (),
                   last_run: float | None = None) -> list[Family]:
    failed = Family("metalfleet_check_failed",
                    "1 for each problem the agent's in-band checks found.")
    ran = Family("metalfleet_check_run", "1 for each in-band check that ran.")
    when = Family("metalfleet_checks_last_run_timestamp_seconds",
                  "When the in-band checks last ran (Unix time).")
    seen: set[tuple[str, str, str]] = set()
    for finding in findings or []:
        key = (str(finding.get("check", "")), str(finding.get("component", "")),
               str(finding.get("severity", "")))
        if key not in seen:
            seen.add(key)
            failed.add(1, check=key[0], component=key[1], severity=key[2])
    for check in sorted(set(checks_run)):
        ran.add(1, check=check)
    when.add(last_run)
    return [failed, ran, when]


def collect(root: HardwareRoot, *, findings: Iterable[Mapping[str, Any]] | None = None,
            checks_run: Iterable[str] = (), last_run: float | None = None) -> str:
    """Everything this exporter knows about the node under ``root``, as exposition text."""
    return render([*node_families(root), *gpu_families(root),
                   *check_families(findings, checks_run, last_run)])


# --- the HTTP server ----------------------------------------------------------------------

Resolver = Callable[[str], str | None]  # URL path -> exposition text, or None for 404


class MetricsServer:
    """A small threaded HTTP server answering GET with ``resolve(path)``; stdlib only."""

    def __init__(self, resolve: Resolver, *, host: str = "0.0.0.0",
                 port: int = DEFAULT_PORT) -> None:
        handler = _handler(resolve)
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.host = host
        self.port = int(self.httpd.server_address[1])
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> MetricsServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True,
                                        name=f"metrics-{self.port}")
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _handler(resolve: Resolver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            try:
                body = resolve(path)
            except Exception:  # one broken read must not kill the server
                log.exception("metrics for %s failed", path)
                self._send(500, "text/plain; charset=utf-8", "metrics collection failed\n")
                return
            if body is None:
                self._send(404, "text/plain; charset=utf-8", f"no metrics at {path}\n")
            else:
                self._send(200, CONTENT_TYPE, body)

        def _send(self, status: int, content_type: str, text: str) -> None:
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

    return Handler
