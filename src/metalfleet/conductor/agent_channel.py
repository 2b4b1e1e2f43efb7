"""The conductor's end of the agent protocol: wait for the agent, hand it commands.

Commands and results travel through the agent_sessions table (inventory/agents.py); this
polls it. An agent whose heartbeats stop for ``heartbeat_timeout_s`` fails the step with
that reason, so a node whose ramdisk died never hangs in deploying or cleaning. A boot
attempt marked suspect (its iPXE script fetched twice, or its boot secret replayed in a
second lookup: inventory/agent_auth.py) fails the step at the next poll, before any result
the agent reports can count: whoever answers may not be the node.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from metalfleet.core.errors import DriverError
from metalfleet.db.agent_models import AgentSession
from metalfleet.db.base import as_utc, utcnow
from metalfleet.db.session import Database
from metalfleet.drivers.base import AgentChannel, ProgressFn
from metalfleet.inventory import agent_auth, agents


class DbAgentChannel(AgentChannel):
    def __init__(self, db: Database, node_id: str, *, since: datetime,
                 heartbeat_timeout_s: float = 30.0, poll_s: float = 0.3) -> None:
        self.db = db
        self.node_id = node_id
        self.since = since
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.poll_s = poll_s

    def _session(self) -> tuple[AgentSession | None, float]:
        with self.db.session() as session:
            suspect = agent_auth.suspicion(session, self.node_id, self.since)
            if suspect is not None:
                raise DriverError(f"agent hijack suspected: {suspect}; the step is failed "
                                  "instead of trusting the agent. Retry it; if it repeats, "
                                  "look for another machine on the provisioning network")
            agent = session.get(AgentSession, self.node_id, populate_existing=True)
            if agent is None or as_utc(agent.booted_at) < self.since:
                return None, 0.0
            session.expunge(agent)
        age = (utcnow() - as_utc(agent.heartbeat_at)).total_seconds()
        return agent, age

    def wait_for_agent(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            agent, _ = self._session()
            if agent is not None:
                return dict(agent.inventory or {})
            if time.monotonic() > deadline:
                raise DriverError(
                    f"the node's agent did not boot within {timeout:.0f} s; check that the "
                    "node network-boots (DHCP/PXE on its provisioning port) and reaches the API"
                )
            time.sleep(self.poll_s)

    def run(self, name: str, args: dict[str, Any], *, timeout: float,
            progress: ProgressFn | None = None) -> dict[str, Any]:
        with self.db.session() as session:
            command_id = agents.queue_command(session, self.node_id, name, args)
        deadline = time.monotonic() + timeout
        last_step = None
        while True:
            time.sleep(self.poll_s)
            agent, age = self._session()
            command = (agent.command or {}) if agent is not None else {}
            if agent is None or command.get("id") != command_id:
                raise DriverError(f"the agent restarted while running {name}; retry the step")
            if age > self.heartbeat_timeout_s:
                raise DriverError(
                    f"the agent stopped heartbeating ({age:.0f} s since the last one, limit "
                    f"{self.heartbeat_timeout_s:.0f} s) while running {name}"
                )
            status = command.get("status")
            if status == "done":
                return dict(command.get("result") or {})
            if status == "failed":
                raise DriverError(f"{name} failed on the node: {command.get('error')}")
            step = command.get("step")
            if progress is not None and step and (step, command.get("percent")) != last_step:
                last_step = (step, command.get("percent"))
                progress(int(command.get("percent") or 0), str(step))
            if time.monotonic() > deadline:
                raise DriverError(f"{name} did not finish within {timeout:.0f} s")
