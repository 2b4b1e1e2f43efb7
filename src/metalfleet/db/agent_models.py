"""The agent's side channel: one row per node whose ramdisk agent is (or was) talking to us."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from metalfleet.db.base import Base, utcnow


class AgentSession(Base):
    """A booted agent: its per-boot token (hashed), last heartbeat and current command.

    The conductor running a node's flow puts a command here; the agent picks it up with its
    next heartbeat, reports progress and the result the same way. Agents pull, so they work
    from behind NAT and any API process can serve them.
    """

    __tablename__ = "agent_sessions"
    node_id: Mapped[str] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True
    )
    token_hash: Mapped[str] = mapped_column(String(64))
    address: Mapped[str | None] = mapped_column(String(64), default=None)
    booted_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    inventory: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # {"id", "name", "args", "status": pending|running|done|failed, "percent", "step",
    #  "result", "error"}; empty when the agent has nothing to do.
    command: Mapped[dict[str, Any]] = mapped_column(default=dict)


class AgentBoot(Base):
    """A node's current boot attempt into the agent ramdisk (inventory/agent_auth.py).

    The conductor begins one when a step that boots the ramdisk starts; the node's first
    iPXE fetch in it gets the per-boot secret (only its hash is kept here), the agent's
    first lookup with it spends it. A second fetch or a replayed lookup sets ``suspicion``,
    which fails the step (conductor/agent_channel.py).
    """

    __tablename__ = "agent_boots"
    node_id: Mapped[str] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True
    )
    attempt: Mapped[str] = mapped_column(String(32))
    step: Mapped[str] = mapped_column(String(32))
    begun_at: Mapped[datetime] = mapped_column(default=utcnow)
    secret_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    issued_at: Mapped[datetime | None] = mapped_column(default=None)
    ipxe_address: Mapped[str | None] = mapped_column(String(64), default=None)
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    lookup_address: Mapped[str | None] = mapped_column(String(64), default=None)
    refetched_at: Mapped[datetime | None] = mapped_column(default=None)
    replayed_at: Mapped[datetime | None] = mapped_column(default=None)
    suspicion: Mapped[str | None] = mapped_column(String(255), default=None)


class RateCounter(Base):
    """Requests per key (``lookup:<source address>``) in the current fixed window, shared
    by every API process (inventory/rate_limits.py); one row per key, reused each window."""

    __tablename__ = "rate_counters"
    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    period: Mapped[int] = mapped_column(BigInteger)  # seconds since the epoch // window
    count: Mapped[int] = mapped_column(Integer, default=0)
