"""``metalfleet-agent monitor``: in-band health checks on a schedule, reported to metalfleet,
and the Prometheus exporter (agent/exporter.py) on a port.

Every ``interval`` seconds it runs the in-band checks (agent/health.py ``run_checks``) and
POSTs the findings to ``/v1/nodes/{name}/health-reports`` with the list of checks that ran,
so metalfleet clears what is fine again. The node's inventory from inspection (``GET
/v1/nodes/{name}/monitor-expectations``) is what the checks compare against (GPU count, IB
ports...).

It authenticates with the node's own monitor credential (``metalfleet node
monitor-credential NAME --out FILE``, then ``--token-file FILE``), never an operator token:
the monitor runs on a tenant's machine, where root reads whatever it holds, and this
credential can only post this node's health reports (it reads nothing else).

It never gives up on the API: a failed report is retried with exponential backoff (1 s,
2 s, ... up to the interval; then the next round sends fresh findings), logged (the 1st,
2nd, 4th, 8th... failure in a row), and the exporter keeps serving meanwhile. A report the
API refuses (400/401/403/404/422: wrong node name, revoked or another node's credential) is
logged and retried at the next round, as the operator may fix it without restarting the agent.

Stdlib only: this module runs on deployed nodes.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from metalfleet.agent import exporter
from metalfleet.agent.hardware_root import HardwareRoot

log = logging.getLogger("metalfleet.agent.monitor")

FIRST_BACKOFF_S = 1.0
REFUSED = frozenset({400, 401, 403, 404, 422})  # fixing these takes an operator, not a retry


@dataclass
class Checks:
    """The last in-band check report (what the exporter shows)."""

    findings: list[dict[str, Any]] = field(default_factory=list)
    checks_run: list[str] = field(default_factory=list)
    not_applicable: list[str] = field(default_factory=list)
    at: float | None = None


def run_checks(root: HardwareRoot, expected: dict[str, Any] | None) -> Checks:
    """The agent's in-band checks; an agent without them (older build) reports nothing."""
    try:
        from metalfleet.agent.health import run_checks as run
    except ImportError:  # pragma: no cover - only while agent/health.py is not installed
        log.warning("this agent has no in-band checks (metalfleet.agent.health missing)")
        return Checks(at=time.time())
    report = run(root, expected)
    return Checks(findings=list(report.findings), checks_run=list(report.checks_run),
                  not_applicable=list(report.not_applicable), at=time.time())


class ApiError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status


class Monitor:
    def __init__(self, api_url: str, token: str, node: str, root: HardwareRoot, *,
                 interval_s: float = 30.0, timeout_s: float = 15.0,
                 stop: threading.Event | None = None) -> None:
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.node = node
        self.root = root
        self.interval_s = max(0.1, interval_s)
        self.timeout_s = timeout_s
        self.stop = stop or threading.Event()
        self.last = Checks()
        self.expected: dict[str, Any] | None = None
        self.looked_up = False  # the inventory was read (it may be empty: not inspected)
        self.reports_sent = 0
        self.failures = 0

    # -- the API ----------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            f"{self.api_url}{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}",
                     "Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raw = exc.read().decode(errors="replace")
            try:
                detail = str(json.loads(raw).get("detail") or raw)
            except (ValueError, AttributeError):
                detail = raw
            raise ApiError(exc.code, detail[:300]) from exc

    def _node_path(self) -> str:
        return f"/v1/nodes/{urllib.parse.quote(self.node, safe='')}"

    def fetch_expected(self) -> None:
        """The node's inspected inventory (what the checks compare against), if reachable."""
        try:
            node = self._request("GET", f"{self._node_path()}/monitor-expectations")
        except (ApiError, OSError, ValueError) as exc:
            log.log(logging.DEBUG if self.failures else logging.WARNING,
                    "could not read %s's inventory (%s); checking without it", self.node, exc)
            return
        inventory = node.get("inventory") if isinstance(node, dict) else None
        self.expected = inventory if isinstance(inventory, dict) and inventory else None
        self.looked_up = True

    def report(self, checks: Checks) -> None:
        self._request("POST", f"{self._node_path()}/health-reports", {
            "source": "agent", "findings": checks.findings, "checks_run": checks.checks_run})

    # -- the loop ---------------------------------------------------------------------------

    def check_once(self) -> Checks:
        self.last = run_checks(self.root, self.expected)
        return self.last

    def metrics(self, path: str) -> str | None:
        if path not in ("/metrics", "/"):
            return None
        return exporter.collect(self.root, findings=self.last.findings,
                                checks_run=self.last.checks_run, last_run=self.last.at)

    def run(self) -> None:
        """Check and report every interval until ``stop`` is set."""
        while not self.stop.is_set():
            if not self.looked_up:
                self.fetch_expected()
            started = time.monotonic()
            try:
                checks = self.check_once()
            except Exception:  # a broken check must not end the monitor
                log.exception("in-band checks failed")
                self.stop.wait(self.interval_s)
                continue
            self._deliver(checks)
            self.stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))

    def _deliver(self, checks: Checks) -> None:
        """Send one report, retrying with backoff until it lands or the next round is due."""
        deadline = time.monotonic() + self.interval_s
        backoff = FIRST_BACKOFF_S
        while not self.stop.is_set():
            try:
                self.report(checks)
            except ApiError as exc:
                error: Exception = exc
                refused = exc.status in REFUSED  # the same request would fail the same way
            except (OSError, ValueError) as exc:  # unreachable, timeout, garbled answer
                error, refused = exc, False
            else:
                self.reports_sent += 1
                if self.failures:
                    log.info("health reports reach %s again after %d failed attempts",
                             self.api_url, self.failures)
                self.failures = 0
                return
            self.failures += 1
            retry = not refused and time.monotonic() + backoff < deadline
            self._log_failure(error, refused, f"retrying in {backoff:g} s" if retry
                              else f"next round in {self.interval_s:g} s")
            if not retry:
                return  # the next round reports fresher findings
            self.stop.wait(backoff)
            backoff = min(backoff * 2, self.interval_s)

    def _log_failure(self, error: Exception, refused: bool, then: str) -> None:
        """The 1st, 2nd, 4th, 8th... failure in a row at warning level: an outage of hours
        stays readable in the log."""
        loud = self.failures & (self.failures - 1) == 0
        level = (logging.ERROR if refused else logging.WARNING) if loud else logging.DEBUG
        what = "metalfleet refused" if refused else "could not send"
        log.log(level, "%s the health report of %s (%s; %d in a row); %s", what, self.node,
                error, self.failures, then)


def serve(api_url: str, token: str, node: str, root: HardwareRoot, *, interval_s: float,
          host: str, port: int, stop: threading.Event | None = None) -> None:
    """Run the exporter and the monitor loop until ``stop``, SIGTERM or Ctrl-C."""
    monitor = Monitor(api_url, token, node, root, interval_s=interval_s, stop=stop)
    if threading.current_thread() is threading.main_thread():  # systemd stops with SIGTERM
        signal.signal(signal.SIGTERM, lambda _signo, _frame: monitor.stop.set())
    with exporter.MetricsServer(monitor.metrics, host=host, port=port) as server:
        log.info("exporter on %s/metrics; reporting %s to %s every %g s", server.url, node,
                 api_url, interval_s)
        try:
            monitor.run()
        except KeyboardInterrupt:
            monitor.stop.set()
