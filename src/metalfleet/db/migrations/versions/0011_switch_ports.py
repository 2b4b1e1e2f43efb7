"""switch ports: how metalfleet reaches a switch, tenant networks, each port's confirmed network

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("switches") as batch:
        batch.add_column(sa.Column("driver", sa.String(length=32), nullable=False,
                                   server_default="none"))
        batch.add_column(sa.Column("address", sa.String(length=255), nullable=False,
                                   server_default=""))
        batch.add_column(sa.Column("username", sa.String(length=127), nullable=True))
        batch.add_column(sa.Column("password_encrypted", sa.Text(), nullable=True))
        batch.add_column(sa.Column("driver_info", sa.JSON(), nullable=False,
                                   server_default="{}"))
    with op.batch_alter_table("networks") as batch:
        batch.add_column(sa.Column("tenant_id", sa.String(length=36), nullable=True))
        batch.create_foreign_key(op.f("fk_networks_tenant_id_tenants"), "tenants",
                                 ["tenant_id"], ["id"], ondelete="CASCADE")
        batch.create_index(op.f("ix_networks_tenant_id"), ["tenant_id"])
    op.create_index("uq_networks_tenant_vlan", "networks", ["vlan_id"], unique=True,
                    sqlite_where=sa.text("role = 'tenant'"),
                    postgresql_where=sa.text("role = 'tenant'"))
    with op.batch_alter_table("ports") as batch:
        batch.add_column(sa.Column("switch_network_id", sa.String(length=36), nullable=True))
        batch.create_foreign_key(op.f("fk_ports_switch_network_id_networks"), "networks",
                                 ["switch_network_id"], ["id"], ondelete="SET NULL")


def downgrade() -> None:
    with op.batch_alter_table("ports") as batch:
        batch.drop_constraint(op.f("fk_ports_switch_network_id_networks"), type_="foreignkey")
        batch.drop_column("switch_network_id")
    op.drop_index("uq_networks_tenant_vlan", table_name="networks")
    with op.batch_alter_table("networks") as batch:
        batch.drop_index(op.f("ix_networks_tenant_id"))
        batch.drop_constraint(op.f("fk_networks_tenant_id_tenants"), type_="foreignkey")
        batch.drop_column("tenant_id")
    with op.batch_alter_table("switches") as batch:
        for column in ("driver_info", "password_encrypted", "username", "address", "driver"):
            batch.drop_column(column)
