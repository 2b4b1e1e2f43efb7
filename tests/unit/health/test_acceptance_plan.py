"""Acceptance plans: specs from the class's columns, a GPU data-sheet table, and overrides."""

from __future__ import annotations

from typing import Any

import pytest

from metalfleet.core.errors import ValidationError
from metalfleet.db import models as m
from metalfleet.health.acceptance import (
    DEFAULT_FRACTIONS,
    GPU_STEPS,
    HOST_STEPS,
    failure_reason,
    known_gpu_spec,
    plan_for,
)


def h100(**extra: Any) -> m.NodeClass:
    return m.NodeClass(name="gpu-h100-8x", gpu_model="NVIDIA H100 80GB HBM3", gpu_count=8,
                       ib_ports=8, ib_rate_gbps=400, extra=extra)


def steps(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["step"]: step for step in plan["steps"]}


def test_gpu_class_plan_takes_columns_and_data_sheet_with_default_fractions() -> None:
    plan = plan_for(h100())
    by = steps(plan)
    assert plan["node_class"] == "gpu-h100-8x"
    assert [s["step"] for s in plan["steps"]] == [*HOST_STEPS, *GPU_STEPS]
    assert by["gpu-inventory"]["spec"] == 8
    assert by["gpu-inventory"]["model"] == "NVIDIA H100 80GB HBM3"
    assert (by["infiniband"]["spec"], by["infiniband"]["rate_gbps"]) == (8, 400)
    compute = by["gpu-compute"]
    assert compute["spec"] == 989 and compute["unit"] == "TFLOPS"
    assert compute["threshold"] == pytest.approx(989 * DEFAULT_FRACTIONS["gpu-compute"])
    assert "data sheet" in compute["source"]
    assert by["gpu-memory-bandwidth"]["spec"] == 3350
    assert by["gpu-p2p"]["spec"] == 450 and by["host-to-device"]["spec"] == 64
    assert all(by[s]["gpus"] == 8 for s in GPU_STEPS[1:])
    # no baseline: CPU, memory, disk and network are recorded only
    for step in ("cpu", "memory", "disk", "network"):
        assert by[step]["spec"] is None and by[step]["threshold"] is None
    assert "seconds" not in plan


def test_extra_acceptance_overrides_specs_fraction_and_adds_baselines() -> None:
    plan = plan_for(h100(acceptance={
        "gpu_tflops": 700, "gpu_mem_bw_gbs": 3000, "threshold": 0.9,
        "thresholds": {"host-to-device": 0.5}, "cpu_mib_s": 2000, "disk_mib_s": 1000,
        "nic_speed_gbps": 100, "nic_count": 2, "seconds": 0.5}))
    by = steps(plan)
    assert (by["gpu-compute"]["spec"], by["gpu-compute"]["threshold"]) == (700, 630)
    assert by["gpu-compute"]["source"] == "class extra.acceptance.gpu_tflops"
    assert by["gpu-memory-bandwidth"]["threshold"] == 2700
    assert by["gpu-p2p"]["threshold"] == pytest.approx(450 * 0.9)  # sheet spec, class fraction
    assert by["host-to-device"]["threshold"] == 32  # per-step fraction wins
    assert by["cpu"]["threshold"] == 1800 and by["disk"]["threshold"] == 900
    assert by["memory"]["threshold"] is None
    assert (by["network"]["spec"], by["network"]["count"]) == (100, 2)
    assert plan["seconds"] == 0.5


def test_cpu_class_and_no_class() -> None:
    cpu = steps(plan_for(m.NodeClass(name="cpu", gpu_count=0, ib_ports=0, extra={})))
    assert cpu["gpu-inventory"]["spec"] == 0
    assert cpu["gpu-compute"]["spec"] is None and cpu["gpu-compute"]["gpus"] == 0
    assert cpu["infiniband"]["spec"] == 0
    bare = plan_for(None)
    assert bare["node_class"] is None
    assert steps(bare)["gpu-inventory"]["spec"] is None


def test_known_gpu_models() -> None:
    assert known_gpu_spec("NVIDIA H200")["gpu_mem_bw_gbs"] == 4800
    assert known_gpu_spec("NVIDIA H100 PCIe")["gpu_tflops"] == 756
    assert "gpu_p2p_gbs" not in known_gpu_spec("NVIDIA H100 PCIe")
    assert known_gpu_spec("NVIDIA A100-SXM4-80GB")["gpu_tflops"] == 312
    assert known_gpu_spec("Some Future GPU") == {}
    assert known_gpu_spec(None) == {}


@pytest.mark.parametrize("extra, message", [
    ({"acceptance": {"gpu_tflops": -1}}, "gpu_tflops must be a positive number"),
    ({"acceptance": {"gpu_tflops": "fast"}}, "gpu_tflops must be a positive number"),
    ({"acceptance": {"threshold": 1.5}}, "fraction of the spec"),
    ({"acceptance": {"thresholds": {"gpu-p2p": 0}}}, "thresholds.gpu-p2p"),
    ({"acceptance": {"thresholds": [0.5]}}, "must map step"),
    ({"acceptance": [1, 2]}, "must be an object"),
    ({"acceptance": {"nic_speed_gbps": True}}, "nic_speed_gbps"),
])
def test_bad_overrides_say_what_to_fix(extra: dict[str, Any], message: str) -> None:
    node_class = m.NodeClass(name="bad", gpu_model="NVIDIA H100 80GB HBM3", gpu_count=8,
                             ib_ports=0, ib_rate_gbps=0, extra=extra)
    with pytest.raises(ValidationError, match=message):
        plan_for(node_class)


def test_failure_reason_names_step_measured_and_threshold() -> None:
    reason = failure_reason([
        {"step": "gpu-inventory", "status": "fail", "measured": 7, "unit": "GPUs",
         "threshold": 8, "detail": "1 missing"},
        {"step": "disk", "status": "fail", "measured": None, "unit": "MiB/s",
         "threshold": None, "detail": "returned different data"},
    ])
    assert reason.startswith("acceptance failed: gpu-inventory measured 7 GPUs, threshold 8")
    assert "disk (returned different data)" in reason
