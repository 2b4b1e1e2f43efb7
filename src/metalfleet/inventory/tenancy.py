"""A node's tenancy: which tenant holds it, and since when.

Every change of a node's tenant goes through ``hand_to``. A new tenant starts a new tenancy:
``tenant_since`` is the moment it got the node, and the access policy (metalfleet/policy.py)
shows that tenant's members the node's events, acceptance runs, health and tickets from then
on only, never the previous tenant's. Handing a node to the tenant that already holds it
keeps the tenancy.
"""

from __future__ import annotations

from datetime import datetime

from metalfleet.db import models as m
from metalfleet.db.base import utcnow


def hand_to(node: m.Node, tenant: m.Tenant | None, now: datetime | None = None) -> None:
    """Give ``node`` to ``tenant`` (None: to nobody)."""
    tenant_id = tenant.id if tenant is not None else None
    if tenant_id is None:
        node.tenant_since = None
    elif tenant_id != node.tenant_id or node.tenant_since is None:
        node.tenant_since = now or utcnow()
    node.tenant = tenant
    node.tenant_id = tenant_id
