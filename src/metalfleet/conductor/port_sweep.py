"""The port sweep: switch ports where the lifecycle wants them, or a drift event and a fix.

Every interval (``METALFLEET_PORT_SWEEP_INTERVAL_S``, default 60 s; 0 turns it off) each
conductor reads, for its share of the idle nodes with managed switch ports (the power-sync
shard), where each port is on the switch, and compares it with where it should be
(network/segments.py ``desired_role``): a failed node belongs on quarantine, an active one on
its tenant's network, any other on provisioning. A port elsewhere is recorded as drift (who
moved it, metalfleet cannot know: the event says what was found) and moved back. This is also
how a node whose health turns ``failed`` reaches quarantine: the health engine only records,
the sweep moves.

It holds the node's reservation while it fixes one, so it never races a flow that moves the
same ports; nodes reserved by a conductor are skipped until the next sweep.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from metalfleet.conductor import reservation
from metalfleet.conductor.periodic import Periodic, interval_from_env
from metalfleet.core.errors import MetalfleetError
from metalfleet.db import models as m
from metalfleet.db.session import Database
from metalfleet.inventory import events
from metalfleet.network import port_moves, segments
from metalfleet.network.switch import SwitchError
from metalfleet.secrets import CredentialCipher

log = logging.getLogger(__name__)

INTERVAL_ENV = "METALFLEET_PORT_SWEEP_INTERVAL_S"
DEFAULT_INTERVAL_S = 60.0


class PortSweep(Periodic[dict[str, int]]):
    def __init__(self, db: Database, cipher: CredentialCipher, *, conductor: str,
                 shard: Callable[[Session], tuple[int, int]],
                 interval_s: float | None = None) -> None:
        super().__init__(interval_from_env(INTERVAL_ENV, DEFAULT_INTERVAL_S)
                         if interval_s is None else interval_s)
        self.db, self.cipher, self.conductor, self.shard = db, cipher, conductor, shard

    def _candidates(self) -> list[str]:
        with self.db.session() as session:
            index, count = self.shard(session)
            managed = select(m.Port.node_id).join(m.Switch, m.Port.switch_id == m.Switch.id) \
                .where(m.Switch.driver != "none", m.Port.switch_port.is_not(None))
            ids = session.scalars(select(m.Node.id).where(
                m.Node.id.in_(managed), m.Node.reservation.is_(None)).order_by(m.Node.name))
            return [i for i in ids if count <= 1 or zlib.crc32(i.encode()) % count == index]

    def sweep(self) -> dict[str, int]:
        counts = {"checked": 0, "drifted": 0, "fixed": 0, "errors": 0}
        for node_id in self._candidates():
            with self.db.session() as session:
                if not reservation.reserve(session, node_id, self.conductor):
                    continue  # a flow took it since: it moves the ports itself
            try:
                counts["checked"] += 1
                found = self.check(node_id)
                counts["drifted"] += int(found is not None)
                counts["fixed"] += int(found is True)
            except MetalfleetError as exc:
                counts["errors"] += 1
                log.warning("port sweep of node %s: %s", node_id, exc.detail)
            finally:
                with self.db.session() as session:
                    reservation.release(session, node_id, self.conductor)
        return counts

    def check(self, node_id: str) -> bool | None:
        """None: where it belongs; True: drift found and fixed; False: drift, fix failed."""
        with self.db.session() as session:
            node = session.get(m.Node, node_id)
            if node is None:
                return None
            role = segments.desired_role(node)
        plan = port_moves.plan_moves(self.db, self.cipher, node_id, role)
        if plan is None:
            return None
        try:
            wrong = []
            for port in plan.ports:
                vlan = port.driver.port_state(port.switch_port).vlan
                if vlan != plan.segment.vlan:
                    wrong.append(f"{port.where} on VLAN {vlan}")
        finally:
            port_moves.close(plan.ports)
        if not wrong:
            return None
        with self.db.session() as session:
            events.record(session, node=session.get(m.Node, node_id), kind="drift",
                          actor=self.conductor,
                          message=f"switch drift: {', '.join(wrong)}; it belongs on "
                                  f"{plan.segment.name} (VLAN {plan.segment.vlan}) as "
                                  f"{plan.role}: moving it back",
                          data={"found": wrong, "network": plan.segment.name})
        try:
            port_moves.move_node_ports(self.db, self.cipher, node_id, role,
                                       actor=self.conductor)
        except (MetalfleetError, SwitchError):
            return False  # move_node_ports recorded why
        return True
