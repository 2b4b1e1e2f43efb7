"""tenancy: when a node began its current tenancy (members read nothing from before it)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 10:00:00

0009 was reserved for this and shipped empty; databases may already stand at it, so the
column comes here. A node that already has a tenant starts its tenancy when it joined that
tenant's cluster, else now: never earlier than it really began (members see less, not more).
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("tenant_since", sa.DateTime(timezone=True), nullable=True))
    nodes = sa.table("nodes", sa.column("id", sa.String), sa.column("tenant_id", sa.String),
                     sa.column("tenant_since", sa.DateTime(timezone=True)))
    members = sa.table("cluster_nodes", sa.column("cluster_id", sa.String),
                       sa.column("node_id", sa.String),
                       sa.column("created_at", sa.DateTime(timezone=True)))
    clusters = sa.table("clusters", sa.column("id", sa.String), sa.column("tenant_id", sa.String))
    joined = (
        sa.select(members.c.created_at)
        .select_from(members.join(clusters, clusters.c.id == members.c.cluster_id))
        .where(members.c.node_id == nodes.c.id, clusters.c.tenant_id == nodes.c.tenant_id)
        .scalar_subquery()
    )
    op.execute(nodes.update().where(nodes.c.tenant_id.is_not(None))
               .values(tenant_since=joined))
    op.execute(nodes.update().where(nodes.c.tenant_id.is_not(None),
                                    nodes.c.tenant_since.is_(None))
               .values(tenant_since=datetime.now(UTC)))


def downgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("tenant_since")
