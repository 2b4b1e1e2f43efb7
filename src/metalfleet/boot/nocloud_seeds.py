"""Per-deploy NoCloud seed secrets: the seed URL names a secret, not a MAC.

The seed holds the tenant's SSH keys, the hostname and the network config, and it is served
without a token (cloud-init has none). So it must not be found by MAC, which anyone on the
provisioning network sees. When a deploy starts the conductor issues a fresh secret (only its
hash is stored) and hands the seed path ``/v1/nocloud/<secret>/`` to the node's boot path
through the registered deliveries. The one every server registers (``SeedFiles``) writes it
to ``<data-dir>/nocloud-seeds/<mac>`` (0600, in the 0700 data dir), the hook for whatever
puts it into the node's boot path: the VM lab reads it into the VM's SMBIOS serial at the
next power-on; for real hardware, a BMC or config-drive integration.

The seed is served only while the node is deploying, or active and not yet past its first
boot: the first meta-data fetch is the first-boot callback, and the seed stays for
``FIRST_BOOT_WINDOW`` after it (cloud-init fetches user-data and network-config next) or
``FIRST_BOOT_GRACE`` after the node became active without one; then it is gone (404).
Any miss answers the same 404 and writes nothing, so probes learn nothing and cost no rows.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from metalfleet.core.states import NodeState
from metalfleet.db import models as m
from metalfleet.db.base import as_utc, utcnow
from metalfleet.db.node_credential_models import NocloudSeed
from metalfleet.db.session import Database
from metalfleet.inventory.tokens import hash_token
from metalfleet.private_files import write_private

log = logging.getLogger(__name__)

PATH_PREFIX = "/v1/nocloud/"
FIRST_BOOT_WINDOW = timedelta(minutes=10)
FIRST_BOOT_GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class SeedHandoff:
    """What a delivery passes on to the node: its seed path (append it to the API URL the
    node reaches), and the node's name and MACs to find the machine by."""

    node: str
    macs: tuple[str, ...]
    path: str


Delivery = Callable[[SeedHandoff], None]
_deliveries: dict[str, Delivery] = {}
SEED_FOLDER = "nocloud-seeds"  # in the data dir


def register_delivery(name: str, delivery: Delivery) -> None:
    """A way to put a seed URL into a node's boot path; one per name (the last wins)."""
    _deliveries[name] = delivery


def unregister_delivery(name: str) -> None:
    _deliveries.pop(name, None)


def seed_file(folder: Path, mac: str) -> Path:
    return folder / mac.lower().replace(":", "-")


@dataclass(frozen=True)
class SeedFiles:
    """Delivery by file: each of the node's MACs gets ``folder/<mac>`` holding the seed path
    (0600; the folder is in the 0700 data dir, as private as the admin token)."""

    folder: Path

    def __call__(self, handoff: SeedHandoff) -> None:
        for mac in handoff.macs:
            write_private(seed_file(self.folder, mac), handoff.path + "\n")


def issue(session: Session, node: m.Node) -> str:
    """A new seed secret for ``node``'s deploy; any older one stops working."""
    session.execute(delete(NocloudSeed).where(NocloudSeed.node_id == node.id))
    secret = secrets.token_urlsafe(32)
    session.add(NocloudSeed(node_id=node.id, secret_hash=hash_token(secret)))
    session.flush()
    return secret


def hand_over(db: Database, node_id: str) -> None:
    """A deploy starts: issue its seed secret and give the seed path to the deliveries."""
    with db.session() as session:
        node = session.get(m.Node, node_id)
        if node is None:
            return
        handoff = SeedHandoff(node=node.name, macs=tuple(p.mac for p in node.ports),
                              path=f"{PATH_PREFIX}{issue(session, node)}/")
    for delivery in list(_deliveries.values()):
        try:
            delivery(handoff)
        except Exception:  # a broken delivery must not fail the deploy; the log says why
            log.exception("could not hand the NoCloud seed of %s over", handoff.node)


def _servable(node: m.Node, seed: NocloudSeed) -> bool:
    now = utcnow()
    if node.state == NodeState.DEPLOYING.value:
        return True
    if node.state != NodeState.ACTIVE.value:
        return False
    if seed.first_boot_at is not None:
        return now < as_utc(seed.first_boot_at) + FIRST_BOOT_WINDOW
    became_active = node.state_changed_at or seed.issued_at
    return now < as_utc(became_active) + FIRST_BOOT_GRACE


def find(session: Session, secret: str) -> tuple[m.Node, NocloudSeed] | None:
    """The node whose current seed ``secret`` is, while its seed is served; else None."""
    seed = session.scalar(select(NocloudSeed)
                          .where(NocloudSeed.secret_hash == hash_token(secret)))
    node = session.get(m.Node, seed.node_id) if seed is not None else None
    if seed is None or node is None or not _servable(node, seed):
        return None
    return node, seed


def first_boot(seed: NocloudSeed) -> bool:
    """Record the first-boot callback; True only for the first one."""
    if seed.first_boot_at is not None:
        return False
    seed.first_boot_at = utcnow()
    return True
