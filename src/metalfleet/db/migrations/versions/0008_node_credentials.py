"""per-node credentials: monitor tokens, per-deploy NoCloud seed secrets

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 19:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "node_credentials",
        sa.Column("node_id", sa.String(length=36), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["node_id"], ["nodes.id"], name=op.f("fk_node_credentials_node_id_nodes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("node_id", name=op.f("pk_node_credentials")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_node_credentials_secret_hash")),
    )
    op.create_table(
        "nocloud_seeds",
        sa.Column("node_id", sa.String(length=36), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_boot_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["node_id"], ["nodes.id"], name=op.f("fk_nocloud_seeds_node_id_nodes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("node_id", name=op.f("pk_nocloud_seeds")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_nocloud_seeds_secret_hash")),
    )


def downgrade() -> None:
    op.drop_table("nocloud_seeds")
    op.drop_table("node_credentials")
