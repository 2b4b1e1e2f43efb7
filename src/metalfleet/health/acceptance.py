"""The acceptance runs stored per burn-in; the plans themselves are health/acceptance_plan.py.

Every burn-in (``provide``) and re-validation (``validate``) stores one AcceptanceRun; its
``reason`` is "revalidation" when the node is in maintenance as the run starts.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from metalfleet.core.errors import NotFoundError, ValidationError
from metalfleet.db import models as m
from metalfleet.db.base import utcnow
from metalfleet.db.health_models import AcceptanceRun
from metalfleet.health.acceptance_plan import (  # re-exported: callers say acceptance.plan_for
    DEFAULT_FRACTIONS,
    GPU_SPECS,
    GPU_STEPS,
    HOST_STEPS,
    SPEC_KEYS,
    known_gpu_spec,
    plan_for,
)
from metalfleet.inventory.pagination import check_limit

__all__ = ["DEFAULT_FRACTIONS", "GPU_SPECS", "GPU_STEPS", "HOST_STEPS", "SPEC_KEYS",
           "known_gpu_spec", "plan_for"]

REASON_BURN_IN = "burn-in"
REASON_REVALIDATION = "revalidation"

if TYPE_CHECKING:
    from metalfleet.policy import Scope


# --- runs ---------------------------------------------------------------------------------


ABANDONED = ("the run never finished: its conductor stopped during the burn-in (the node "
             "was failed by conductor recovery)")


def start_run(session: Session, node: m.Node, plan: dict[str, Any]) -> AcceptanceRun:
    """A run begins: "revalidation" if the node is in maintenance now, else "burn-in".

    A run of this node still open can only be one whose conductor died: it is closed failed.
    """
    for stale in session.scalars(select(AcceptanceRun).where(
            AcceptanceRun.node_id == node.id, AcceptanceRun.finished_at.is_(None))):
        stale.results = [*(stale.results or []), {
            "step": "burn-in", "status": "fail", "measured": None, "unit": None, "spec": None,
            "threshold": None, "detail": ABANDONED}]
        stale.passed, stale.finished_at = False, utcnow()
    run = AcceptanceRun(
        node_id=node.id, node_name=node.name,
        node_class=node.node_class.name if node.node_class is not None else None,
        reason=REASON_REVALIDATION if node.maintenance else REASON_BURN_IN,
        plan=plan, results=[], passed=None, started_at=utcnow(),
    )
    session.add(run)
    session.flush()
    return run


def finish_run(session: Session, run_id: str, results: list[dict[str, Any]],
               passed: bool) -> AcceptanceRun:
    run = get_run(session, run_id)
    run.results = list(results)
    run.passed = passed
    run.finished_at = utcnow()
    session.flush()
    return run


def missing_run(run_id: str) -> str:
    return (f"no acceptance run {run_id!r}; list a node's runs with "
            "GET /v1/nodes/{name}/acceptance-runs")


def get_run(session: Session, run_id: str) -> AcceptanceRun:
    run = session.get(AcceptanceRun, run_id)
    if run is None:
        raise NotFoundError(missing_run(run_id))
    return run


def latest_run(session: Session, node_id: str, reason: str | None = None
               ) -> AcceptanceRun | None:
    """The node's most recently started run (of ``reason`` if given), finished or not."""
    statement = select(AcceptanceRun).where(AcceptanceRun.node_id == node_id)
    if reason is not None:
        statement = statement.where(AcceptanceRun.reason == reason)
    statement = statement.order_by(AcceptanceRun.started_at.desc(), AcceptanceRun.id.desc())
    return session.scalars(statement.limit(1)).first()


def _encode(run: AcceptanceRun) -> str:
    raw = f"{run.started_at.isoformat()}|{run.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, run_id = raw.split("|", 1)
        return datetime.fromisoformat(stamp), run_id
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValidationError("the cursor is not one this server handed out; pass the 'next' "
                              "of the previous page unchanged") from exc


def list_runs(session: Session, node_id: str, *, limit: int = 20, cursor: str | None = None,
              reason: str | None = None,
              scope: Scope | None = None,
              ) -> tuple[list[AcceptanceRun], str | None]:
    """A node's runs, newest first, keyset-paginated on (started_at, id); ``scope`` is the
    caller's access policy (metalfleet/policy.py)."""
    check_limit(limit)
    statement: Select[Any] = select(AcceptanceRun).where(AcceptanceRun.node_id == node_id)
    if scope is not None:
        statement = scope(statement)
    if reason is not None:
        statement = statement.where(AcceptanceRun.reason == reason)
    if cursor:
        started, run_id = _decode(cursor)
        statement = statement.where(
            (AcceptanceRun.started_at < started)
            | ((AcceptanceRun.started_at == started) & (AcceptanceRun.id < run_id)))
    statement = statement.order_by(AcceptanceRun.started_at.desc(), AcceptanceRun.id.desc())
    rows = list(session.scalars(statement.limit(limit + 1)))
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, _encode(rows[-1])
    return rows, None


# --- judging what the agent returned -------------------------------------------------------


def failed_steps(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in results if r.get("status") == "fail"]


def failure_reason(failed: list[dict[str, Any]]) -> str:
    """"acceptance failed: gpu-inventory measured 7 GPUs, threshold 8 (...)" for the node."""
    parts = []
    for r in failed:
        unit = r.get("unit") or ""
        numbers = (f" measured {r['measured']} {unit}, threshold {r['threshold']} {unit}"
                   if r.get("measured") is not None and r.get("threshold") is not None else "")
        parts.append(f"{r['step']}{numbers} ({r.get('detail') or 'failed'})")
    return "acceptance failed: " + "; ".join(parts)
