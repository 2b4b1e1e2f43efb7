"""Acceptance test plans per node class, and the runs stored per burn-in.

A plan lists the steps the agent runs (metalfleet.agent.acceptance) with, for each, the
class's ``spec``, the ``fraction`` of it that passes and the absolute ``threshold``. Specs come
from the node class: its columns (GPU count and model, IB ports and rate), a table of known
GPU models below, and ``node_class.extra["acceptance"]``, which overrides everything::

    {"gpu_tflops": 989, "gpu_mem_bw_gbs": 3350, "gpu_p2p_gbs": 450, "h2d_gbs": 64,
     "d2h_gbs": 64,
     "cpu_mib_s": 9000, "memory_mib_s": 4000, "disk_mib_s": 1500,   # per-class baselines
     "nic_speed_gbps": 100, "nic_count": 2,
     "threshold": 0.9,                         # fraction for every step
     "thresholds": {"gpu-compute": 0.7},       # ... or per step
     "seconds": 2.0}                           # CPU + memory time budget

CPU, memory and disk have no spec sheet value: without a baseline in ``extra`` the agent
records the measurement and passes on "measurable and non-zero" (its detail says so).

Stdlib only (no database): the agent's GPU check script builds an H200 plan with it on a
machine that has torch and nothing of the control plane.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from metalfleet.agent.acceptance import FORMAT
from metalfleet.core.errors import ValidationError


class NodeClassLike(Protocol):
    """What a plan reads of a node class (db.models.NodeClass, or a stand-in off the DB)."""

    @property
    def name(self) -> str: ...
    @property
    def gpu_model(self) -> str | None: ...
    @property
    def gpu_count(self) -> int: ...
    @property
    def ib_ports(self) -> int: ...
    @property
    def ib_rate_gbps(self) -> int: ...
    @property
    def extra(self) -> dict[str, Any]: ...

# Default fraction of the spec that passes. Real kernels do not reach data-sheet peaks:
# cuBLAS BF16 reaches ~65-80 % of dense peak, copies ~80-90 % of HBM, PCIe ~80 %.
DEFAULT_FRACTIONS: dict[str, float] = {
    "cpu": 0.8, "memory": 0.8, "disk": 0.8,  # against a measured baseline, not a spec
    "gpu-compute": 0.6, "gpu-memory-bandwidth": 0.75, "gpu-p2p": 0.6, "host-to-device": 0.6,
    "device-to-host": 0.6,
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
    "device-to-host": ("d2h_gbs", "GB/s"),
}
# Data-sheet values by GPU model (first substring match of the class's gpu_model wins):
# dense BF16 TFLOPS, HBM GB/s, NVLink GB/s one direction, PCIe host link GB/s.
GPU_SPECS: list[tuple[str, dict[str, float]]] = [
    # H200 NVL is the PCIe card (600 W): 1671 TFLOPS sparse BF16 = 835 dense.
    ("h200 nvl", {"gpu_tflops": 835, "gpu_mem_bw_gbs": 4800, "gpu_p2p_gbs": 450,
                  "h2d_gbs": 64, "d2h_gbs": 64}),
    ("h200", {"gpu_tflops": 989, "gpu_mem_bw_gbs": 4800, "gpu_p2p_gbs": 450,
              "h2d_gbs": 64, "d2h_gbs": 64}),
    ("h100 pcie", {"gpu_tflops": 756, "gpu_mem_bw_gbs": 2000, "h2d_gbs": 64, "d2h_gbs": 64}),
    ("h100", {"gpu_tflops": 989, "gpu_mem_bw_gbs": 3350, "gpu_p2p_gbs": 450,
              "h2d_gbs": 64, "d2h_gbs": 64}),
    ("b200", {"gpu_tflops": 2250, "gpu_mem_bw_gbs": 8000, "gpu_p2p_gbs": 900,
              "h2d_gbs": 64, "d2h_gbs": 64}),
    ("a100", {"gpu_tflops": 312, "gpu_mem_bw_gbs": 2039, "gpu_p2p_gbs": 300,
              "h2d_gbs": 32, "d2h_gbs": 32}),
    ("l40s", {"gpu_tflops": 362, "gpu_mem_bw_gbs": 864, "h2d_gbs": 32, "d2h_gbs": 32}),
]
HOST_STEPS = ("cpu", "memory", "disk", "network", "infiniband")
GPU_STEPS = ("gpu-inventory", "gpu-compute", "gpu-memory-bandwidth", "gpu-p2p",
             "host-to-device", "device-to-host")


def _number(where: str, value: Any, *, fraction: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValidationError(f"{where} must be a positive number, got {value!r}; fix the "
                              "node class's extra.acceptance")
    if fraction and value > 1:
        raise ValidationError(f"{where} is a fraction of the spec (0 < f <= 1), got {value}")
    return float(value)


def _overrides(node_class: NodeClassLike | None) -> dict[str, Any]:
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


def plan_for(node_class: NodeClassLike | None) -> dict[str, Any]:
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
