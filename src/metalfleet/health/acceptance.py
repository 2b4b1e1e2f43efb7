"""Acceptance test plans per node class, and the runs stored per burn-in.

A plan lists the steps the agent runs (metalfleet.agent.acceptance) with, for each, the
class's ``spec``, the ``fraction`` of it that passes and the absolute ``threshold``. Specs come
from the node class: its columns (GPU count and model, IB ports and rate), a table of known
GPU models below, and ``node_class.extra["acceptance"]``, which overrides everything::

    {"gpu_tflops": 989, "gpu_mem_bw_gbs": 3350, "gpu_p2p_gbs": 450, "h2d_gbs": 64,
     "cpu_mib_s": 9000, "memory_mib_s": 4000, "disk_mib_s": 1500,   # per-class baselines
     "nic_speed_gbps": 100, "nic_count": 2,
     "threshold": 0.9,                         # fraction for every step
     "thresholds": {"gpu-compute": 0.7},       # ... or per step
     "seconds": 2.0}                           # CPU + memory time budget

CPU, memory and disk have no spec sheet value: without a baseline in ``extra`` the agent
records the measurement and passes on "measurable and non-zero" (its detail says so).

Every burn-in (``provide``) and re-validation (``validate``) stores one AcceptanceRun; its
``reason`` is "revalidation" when the node is in maintenance as the run starts.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from metalfleet.agent.acceptance import FORMAT
from metalfleet.core.errors import NotFoundError, ValidationError
from metalfleet.db import models as m
from metalfleet.db.base import utcnow
from metalfleet.db.health_models import AcceptanceRun
from metalfleet.inventory.pagination import check_limit

REASON_BURN_IN = "burn-in"
REASON_REVALIDATION = "revalidation"

# Default fraction of the spec that passes. Real kernels do not reach data-sheet peaks:
# cuBLAS BF16 reaches ~65-80 % of dense peak, copies ~80-90 % of HBM, PCIe ~80 %.
DEFAULT_FRACTIONS: dict[str, float] = {
    "cpu": 0.8, "memory": 0.8, "disk": 0.8,  # against a measured baseline, not a spec
    "gpu-compute": 0.6, "gpu-memory-bandwidth": 0.75, "gpu-p2p": 0.6, "host-to-device": 0.6,
}
# step -> (extra["acceptance"] key, unit)
SPEC_KEYS: dict[str, tuple[str, str]] = {
    "cpu": ("cpu_mib_s", "MiB/s"),
    "memory": ("memory_mib_s", "MiB/s"),
    "disk": ("disk_mib_s", "MiB/s"),
    "gpu-compute": ("gpu_tflops", "TFLOPS"),
    "gpu-memory-bandwidth": ("gpu_mem_bw_gbs", "GB/s"),
    "gpu-p2p": ("gpu_p2p_gbs", "GB/s"),
    "host-to-device": ("h2d_gbs", "GB/s"),
}
# Data-sheet values by GPU model (first substring match of the class's gpu_model wins):
# dense BF16 TFLOPS, HBM GB/s, NVLink GB/s one direction, PCIe host link GB/s.
GPU_SPECS: list[tuple[str, dict[str, float]]] = [
    ("h200", {"gpu_tflops": 989, "gpu_mem_bw_gbs": 4800, "gpu_p2p_gbs": 450, "h2d_gbs": 64}),
    ("h100 pcie", {"gpu_tflops": 756, "gpu_mem_bw_gbs": 2000, "h2d_gbs": 64}),
    ("h100", {"gpu_tflops": 989, "gpu_mem_bw_gbs": 3350, "gpu_p2p_gbs": 450, "h2d_gbs": 64}),
    ("b200", {"gpu_tflops": 2250, "gpu_mem_bw_gbs": 8000, "gpu_p2p_gbs": 900, "h2d_gbs": 64}),
    ("a100", {"gpu_tflops": 312, "gpu_mem_bw_gbs": 2039, "gpu_p2p_gbs": 300, "h2d_gbs": 32}),
    ("l40s", {"gpu_tflops": 362, "gpu_mem_bw_gbs": 864, "h2d_gbs": 32}),
]
HOST_STEPS = ("cpu", "memory", "disk", "network", "infiniband")
GPU_STEPS = ("gpu-inventory", "gpu-compute", "gpu-memory-bandwidth", "gpu-p2p",
             "host-to-device")


def _number(where: str, value: Any, *, fraction: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValidationError(f"{where} must be a positive number, got {value!r}; fix the "
                              "node class's extra.acceptance")
    if fraction and value > 1:
        raise ValidationError(f"{where} is a fraction of the spec (0 < f <= 1), got {value}")
    return float(value)


def _overrides(node_class: m.NodeClass | None) -> dict[str, Any]:
    extra = (node_class.extra or {}) if node_class is not None else {}
    found = extra.get("acceptance") or {}
    if not isinstance(found, Mapping):
        raise ValidationError("node class extra.acceptance must be an object, e.g. "
                              '{"gpu_tflops": 989, "threshold": 0.9}')
    return dict(found)


def known_gpu_spec(model: str | None) -> dict[str, float]:
    lowered = (model or "").lower()
    for key, spec in GPU_SPECS:
        if key in lowered:
            return dict(spec)
    return {}


def _fraction(step: str, overrides: dict[str, Any]) -> float:
    per_step = overrides.get("thresholds") or {}
    if not isinstance(per_step, Mapping):
        raise ValidationError("node class extra.acceptance.thresholds must map step -> fraction")
    if step in per_step:
        return _number(f"extra.acceptance.thresholds.{step}", per_step[step], fraction=True)
    if "threshold" in overrides:
        return _number("extra.acceptance.threshold", overrides["threshold"], fraction=True)
    return DEFAULT_FRACTIONS.get(step, 1.0)


def _measured_step(step: str, overrides: dict[str, Any], defaults: dict[str, float],
                   model: str | None) -> dict[str, Any]:
    key, unit = SPEC_KEYS[step]
    fraction = _fraction(step, overrides)
    if key in overrides:
        spec: float | None = _number(f"extra.acceptance.{key}", overrides[key])
        source = f"class extra.acceptance.{key}"
    elif key in defaults:
        spec, source = defaults[key], f"data sheet of {model}"
    else:
        spec, source = None, f"none (set extra.acceptance.{key} on the class)"
    threshold = None if spec is None else round(spec * fraction, 3)
    return {"step": step, "unit": unit, "spec": spec, "fraction": fraction,
            "threshold": threshold, "source": source}


def plan_for(node_class: m.NodeClass | None) -> dict[str, Any]:
    """The acceptance plan of a class (or of a node without one: host steps recorded only)."""
    overrides = _overrides(node_class)
    model = node_class.gpu_model if node_class is not None else None
    gpu_count = node_class.gpu_count if node_class is not None else None
    defaults = known_gpu_spec(model)
    steps = [_measured_step(step, overrides, {}, None) for step in ("cpu", "memory", "disk")]
    steps[1]["size_mib"] = 64
    steps[2]["scratch_mib"] = 8
    nic_speed = overrides.get("nic_speed_gbps")
    steps.append({
        "step": "network", "unit": "Gb/s",
        "spec": None if nic_speed is None else _number("extra.acceptance.nic_speed_gbps",
                                                       nic_speed),
        "count": int(_number("extra.acceptance.nic_count", overrides.get("nic_count", 1))),
        "fraction": 1.0, "threshold": None if nic_speed is None else float(nic_speed),
        "source": "class extra.acceptance.nic_speed_gbps" if nic_speed is not None
        else "none (link up only)"})
    ib_ports = node_class.ib_ports if node_class is not None else 0
    ib_rate = node_class.ib_rate_gbps if node_class is not None else 0
    steps.append({"step": "infiniband", "unit": "ports", "spec": ib_ports,
                  "rate_gbps": ib_rate, "fraction": 1.0, "threshold": ib_ports,
                  "source": "class columns ib_ports, ib_rate_gbps"})
    steps.append({"step": "gpu-inventory", "unit": "GPUs", "spec": gpu_count, "model": model,
                  "fraction": 1.0, "threshold": gpu_count,
                  "source": "class columns gpu_count, gpu_model"})
    for step in GPU_STEPS[1:]:
        entry = _measured_step(step, overrides, defaults, model)
        entry["gpus"] = gpu_count
        steps.append(entry)
    plan: dict[str, Any] = {"format": FORMAT,
                            "node_class": node_class.name if node_class is not None else None,
                            "steps": steps}
    if "seconds" in overrides:
        plan["seconds"] = _number("extra.acceptance.seconds", overrides["seconds"])
    return plan


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


def get_run(session: Session, run_id: str) -> AcceptanceRun:
    run = session.get(AcceptanceRun, run_id)
    if run is None:
        raise NotFoundError(f"no acceptance run {run_id!r}; list a node's runs with "
                            "GET /v1/nodes/{name}/acceptance-runs")
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
              reason: str | None = None) -> tuple[list[AcceptanceRun], str | None]:
    """A node's runs, newest first, keyset-paginated on (started_at, id)."""
    check_limit(limit)
    statement = select(AcceptanceRun).where(AcceptanceRun.node_id == node_id)
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
