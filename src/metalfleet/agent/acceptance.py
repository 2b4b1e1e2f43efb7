"""The acceptance test plan, run on the node: every step measured and judged, none faked.

The control plane sends a plan (``metalfleet.health.acceptance.plan_for``): a list of steps,
each with the class's ``spec`` and an absolute ``threshold`` (a fraction of the spec, already
worked out). Each step here measures, compares with the threshold and returns::

    {"step", "status": "pass" | "fail" | "not-applicable", "measured", "unit", "spec",
     "threshold", "detail"}

A step without a threshold (no spec or baseline for the class) records its measurement and
passes when it is measurable and non-zero; its detail says so. What each step measures:

* ``cpu``: SHA-256 throughput of all threads, every digest checked (``burnin.cpu_test``).
* ``memory``: pattern write + read-back throughput through Python buffers (a lower bound of
  the memory bandwidth, not STREAM), every pattern checked (``burnin.memory_test``).
* ``disk``: sequential write then read of a scratch region of the root disk, compared and
  zeroed back (``burnin.disk_test``): nothing outside the scratch region is touched.
* ``network``: Ethernet links up and their negotiated speed from sysfs. This is link state,
  not throughput: a loopback transfer would measure the kernel, not the network.
* ``infiniband``: IB ports ACTIVE at the class's rate, from sysfs.
* ``gpu-inventory``: GPU count and model (NVML, or the lab's synthetic NVML json).
* ``gpu-compute``, ``gpu-memory-bandwidth``, ``gpu-p2p``, ``host-to-device``,
  ``device-to-host``: measured with CUDA kernels through ``torch`` on the node itself; without
  such a runtime (NVML alone cannot run kernels), or on a lab's synthetic root, they are
  "not-applicable" with the reason. ``gpu-p2p`` needs two GPUs: on one it is not applicable.

Every result carries ``elapsed_s``, the step's wall time, so burn-in plans can be budgeted
(measured on an H200: docs/benchmarks.md).

Stdlib only (torch is imported lazily when present): this module runs inside the ramdisk.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from metalfleet.agent import burnin
from metalfleet.agent.disk import MIB, Progress
from metalfleet.agent.hardware_root import HardwareRoot
from metalfleet.agent.inventory import _gpus, _infiniband, _nics
from metalfleet.core.errors import MetalfleetError

FORMAT = "metalfleet-acceptance/1"
PLAN_KEY = "acceptance_plan"  # where the conductor hands the plan to drivers (driver_info)
PASS, FAIL, NOT_APPLICABLE = "pass", "fail", "not-applicable"
# What an agent runs when the control plane sends no plan (an older conductor, the CLI).
DEFAULT_STEPS = ("cpu", "memory", "disk", "network")
GPU_PERF_STEPS = ("gpu-compute", "gpu-memory-bandwidth", "gpu-p2p", "host-to-device",
                  "device-to-host")
# Per GPU and step, after the warm-up. Only real GPUs run these (a lab root is not
# applicable), and the plan may set "seconds" per step.
GPU_MEASURE_S = 1.0
GPU_WARMUP_S = 0.2  # idle clocks ramp to boost within ~100 ms of load (seen on an H200)

Result = dict[str, Any]
StepFn = Callable[["Run", dict[str, Any]], Result]


def result(step: dict[str, Any], status: str, measured: float | None, detail: str,
           unit: str | None = None) -> Result:
    if measured is not None and not isinstance(measured, int):  # counts stay integers
        measured = round(float(measured), 3)
    return {"step": step["step"], "status": status, "measured": measured,
            "unit": unit or step.get("unit"), "spec": step.get("spec"),
            "threshold": step.get("threshold"), "detail": detail}


def judge(step: dict[str, Any], measured: float, what: str, unit: str | None = None) -> Result:
    """Compare a measurement with the step's threshold (or pass a measurable one without)."""
    unit = unit or step.get("unit") or ""
    threshold = step.get("threshold")
    if threshold is None:
        if measured > 0:
            return result(step, PASS, measured, f"{what}; no spec or baseline for this class, "
                          "recorded only (passes when measurable and non-zero)", unit)
        return result(step, FAIL, measured, f"{what}; measured zero", unit)
    if measured >= float(threshold):
        return result(step, PASS, measured, f"{what}; >= threshold {threshold} {unit}", unit)
    return result(step, FAIL, measured,
                  f"{what}; measured {measured:.1f} {unit} is below the threshold "
                  f"{threshold} {unit} ({step.get('fraction')} x spec {step.get('spec')})", unit)


class Run:
    """One plan's execution on one node: the root, the scratch disk and the time budget."""

    def __init__(self, root: HardwareRoot, device: Path, seconds: float,
                 cpu_workers: int | None) -> None:
        self.root = root
        self.device = device
        self.seconds = seconds
        self.cpu_workers = cpu_workers
        self.raw: dict[str, Any] = {}  # the plain measurements, for older readers
        self.gpus_found: list[dict[str, Any]] = []

    # -- host ------------------------------------------------------------------------------

    def cpu(self, step: dict[str, Any]) -> Result:
        host = burnin._host_cpus()
        workers = self.cpu_workers or min(burnin._root_threads(self.root) or host, host)
        workers = max(1, min(workers, burnin.MAX_CPU_WORKERS))
        raw = self.raw["cpu"] = burnin.cpu_test(self.seconds * 0.5, workers)
        return judge(step, raw["mib_per_s"],
                     f"SHA-256 over {workers} threads, {raw['ops']} digests all correct",
                     "MiB/s")

    def memory(self, step: dict[str, Any]) -> Result:
        size = int(step.get("size_mib", 64))
        raw = self.raw["memory"] = burnin.memory_test(self.seconds * 0.25, size)
        return judge(step, raw["mib_per_s"],
                     f"{raw['passes']} pattern write+verify passes over {size} MiB "
                     "(Python buffer copy: a lower bound, not STREAM)", "MiB/s")

    def disk(self, step: dict[str, Any]) -> Result:
        size = int(step.get("scratch_mib", 8)) * MIB
        raw = self.raw["disk"] = burnin.disk_test(self.device, size)
        slower = min(raw["write_mib_per_s"], raw["read_mib_per_s"])
        return judge(step, slower,
                     f"sequential {size // MIB} MiB on a scratch region of {self.device.name}: "
                     f"write {raw['write_mib_per_s']} MiB/s, read {raw['read_mib_per_s']} MiB/s "
                     "(the slower one counts), verified and zeroed back", "MiB/s")

    def network(self, step: dict[str, Any]) -> Result:
        up = [n for n in _nics(self.root) if n["link"] == "up"]
        speeds = sorted(((n["speed_mbps"] or 0) / 1000 for n in up), reverse=True)
        links = ", ".join(f"{n['name']} {(n['speed_mbps'] or 0) / 1000:g}G" for n in up)
        what = f"link state and negotiated speed from sysfs, not throughput; up: {links or 'none'}"
        if not up:
            return result(step, FAIL, 0, f"{what}; no Ethernet link is up: check cabling and "
                          "the switch port", "Gb/s")
        want = step.get("spec")
        count = int(step.get("count", 1))
        if want is None:
            return result(step, PASS, speeds[0], f"{what}; the class names no expected speed "
                          "(extra.acceptance.nic_speed_gbps), so a link up passes", "Gb/s")
        fast = [s for s in speeds if s >= float(want)]
        if len(fast) >= count:
            return result(step, PASS, fast[count - 1], f"{what}; {len(fast)} link(s) at "
                          f">= {want}G (need {count})", "Gb/s")
        best = speeds[count - 1] if len(speeds) >= count else 0
        return result(step, FAIL, best, f"{what}; need {count} link(s) at {want}G, found "
                      f"{len(fast)}: check the cable/transceiver and switch port speed", "Gb/s")

    def infiniband(self, step: dict[str, Any]) -> Result:
        want_ports = int(step.get("spec") or 0)
        rate = float(step.get("rate_gbps") or 0)
        if want_ports == 0:
            return result(step, NOT_APPLICABLE, None, "the class has no InfiniBand ports",
                          "ports")
        ports = _infiniband(self.root)
        good = [p for p in ports if p["state"] == "ACTIVE" and (p["rate_gbps"] or 0) >= rate]
        bad = [f"{p['device']}/{p['port']} {p['state']} {p['rate_gbps']}G"
               for p in ports if p not in good]
        what = f"ports ACTIVE at >= {rate:g} Gb/s from sysfs: {len(good)} of {len(ports)}"
        if len(good) >= want_ports:
            return result(step, PASS, len(good), what, "ports")
        return result(step, FAIL, len(good), f"{what}, class expects {want_ports}"
                      + (f"; not good: {', '.join(bad)}" if bad else "")
                      + "; check the IB cables and the subnet manager", "ports")

    # -- GPUs ------------------------------------------------------------------------------

    def gpu_inventory(self, step: dict[str, Any]) -> Result:
        self.gpus_found, _ = _gpus(self.root)
        want = int(step.get("spec") or 0)
        model = step.get("model")
        found = len(self.gpus_found)
        if step.get("spec") is None:
            return result(step, NOT_APPLICABLE, found, f"the node has no class: GPU count not "
                          f"checked (found {found})", "GPUs")
        if want == 0:
            return result(step, NOT_APPLICABLE, found, f"the class has no GPUs (found {found})",
                          "GPUs")
        names = sorted({str(g.get("name")) for g in self.gpus_found})
        wrong = [g for g in self.gpus_found
                 if model and g.get("name") and str(model).lower() not in str(g["name"]).lower()]
        what = f"{found} GPU(s) via NVML ({', '.join(names) or 'none'}), class expects {want}"
        what += f" x {model}" if model else ""
        if found < want:
            return result(step, FAIL, found, f"{what}: {want - found} missing; reseat or "
                          "replace the GPU (check `nvidia-smi` and the kernel log for XID 79)",
                          "GPUs")
        if wrong:
            return result(step, FAIL, found, f"{what}: {len(wrong)} of another model", "GPUs")
        return result(step, PASS, found, what, "GPUs")

    def gpu_perf(self, step: dict[str, Any]) -> Result:
        unit = step.get("unit") or GPU_UNITS[step["step"]]
        if step.get("gpus") == 0:
            return result(step, NOT_APPLICABLE, None, "the class has no GPUs", unit)
        torch, why = gpu_runtime(self.root)
        if torch is None:
            return result(step, NOT_APPLICABLE, None, why, unit)
        count = int(torch.cuda.device_count())
        if step["step"] == "gpu-p2p" and count < 2:
            return result(step, NOT_APPLICABLE, None, f"{count} GPU visible: no GPU pair", unit)
        measure = GPU_MEASURES[step["step"]]
        seconds = float(step.get("seconds", GPU_MEASURE_S))
        values = [measure(torch, i, count, seconds) for i in range(count)]
        per_gpu = ", ".join(f"{v:.1f}" for v in values)
        return judge(step, min(values), f"{MEASURE_TEXT[step['step']]}; per GPU: {per_gpu} "
                     "(the slowest counts)", unit)


def gpu_runtime(root: HardwareRoot) -> tuple[Any | None, str]:
    """torch with a CUDA device on the node itself, or None and why not."""
    if not root.is_host:
        return None, ("a synthetic hardware root (the lab): GPU kernels run only on the node "
                      "itself, and NVML data alone cannot measure FLOPS or bandwidth")
    try:
        torch: Any = importlib.import_module("torch")
    except ImportError:
        return None, ("no GPU kernel runtime on the node: torch is not importable (NVML alone "
                      "cannot measure FLOPS or bandwidth)")
    if not torch.cuda.is_available():
        return None, "torch is importable but sees no CUDA device (no driver or no GPU)"
    return torch, ""


def _timed(torch: Any, devices: list[Any], seconds: float,
           op: Callable[[], Any]) -> tuple[int, float]:
    """Repeat ``op`` for about ``seconds`` after a warm-up; (repetitions, elapsed)."""

    def sync() -> None:
        for device in devices:
            torch.cuda.synchronize(device)

    warm_until = time.perf_counter() + min(GPU_WARMUP_S, seconds / 2)
    op()
    sync()
    while time.perf_counter() < warm_until:
        op()
        sync()
    reps, started = 0, time.perf_counter()
    while True:
        for _ in range(4):
            op()
        reps += 4
        sync()
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return reps, elapsed


def _tflops(torch: Any, index: int, count: int, seconds: float) -> float:
    device = torch.device("cuda", index)
    n = 8192
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    out = torch.empty_like(a)
    reps, elapsed = _timed(torch, [device], seconds, lambda: torch.matmul(a, b, out=out))
    return 2.0 * n**3 * reps / elapsed / 1e12


def _mem_bw(torch: Any, index: int, count: int, seconds: float) -> float:
    device = torch.device("cuda", index)
    size = 1024 * MIB
    src = torch.empty(size, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    reps, elapsed = _timed(torch, [device], seconds, lambda: dst.copy_(src))
    return 2.0 * size * reps / elapsed / 1e9  # each copy reads and writes every byte


def _p2p(torch: Any, index: int, count: int, seconds: float) -> float:
    size = 256 * MIB
    src = torch.empty(size, dtype=torch.uint8, device=torch.device("cuda", index))
    dst = torch.empty(size, dtype=torch.uint8, device=torch.device("cuda", (index + 1) % count))
    reps, elapsed = _timed(torch, [src.device, dst.device], seconds, lambda: dst.copy_(src))
    return float(size * reps / elapsed / 1e9)


def _host_copy(torch: Any, index: int, seconds: float, *, to_device: bool) -> float:
    """GB/s of 256 MiB copies between pinned host memory and GPU ``index`` (one way)."""
    device = torch.device("cuda", index)
    size = 256 * MIB
    host = torch.empty(size, dtype=torch.uint8, pin_memory=True)
    gpu = torch.empty(size, dtype=torch.uint8, device=device)
    dst, src = (gpu, host) if to_device else (host, gpu)
    reps, elapsed = _timed(torch, [device], seconds, lambda: dst.copy_(src, non_blocking=True))
    return float(size * reps / elapsed / 1e9)


def _h2d(torch: Any, index: int, count: int, seconds: float) -> float:
    return _host_copy(torch, index, seconds, to_device=True)


def _d2h(torch: Any, index: int, count: int, seconds: float) -> float:
    return _host_copy(torch, index, seconds, to_device=False)


GPU_MEASURES: dict[str, Callable[[Any, int, int, float], float]] = {
    "gpu-compute": _tflops, "gpu-memory-bandwidth": _mem_bw, "gpu-p2p": _p2p,
    "host-to-device": _h2d, "device-to-host": _d2h,
}
GPU_UNITS = {"gpu-compute": "TFLOPS", "gpu-memory-bandwidth": "GB/s", "gpu-p2p": "GB/s",
             "host-to-device": "GB/s", "device-to-host": "GB/s"}
MEASURE_TEXT = {
    "gpu-compute": "dense BF16 matmul 8192^3 with torch",
    "gpu-memory-bandwidth": "device-to-device copy of 1 GiB with torch (read + write bytes)",
    "gpu-p2p": "copy of 256 MiB from each GPU to the next with torch (peer-to-peer/NVLink "
               "when the driver enables peer access)",
    "host-to-device": "copy of 256 MiB from pinned host memory to each GPU with torch",
    "device-to-host": "copy of 256 MiB from each GPU to pinned host memory with torch",
}
STEPS: dict[str, StepFn] = {
    "cpu": Run.cpu, "memory": Run.memory, "disk": Run.disk, "network": Run.network,
    "infiniband": Run.infiniband, "gpu-inventory": Run.gpu_inventory,
    **{name: Run.gpu_perf for name in GPU_PERF_STEPS},
}


def _no_progress(percent: int, step: str) -> None:
    return None


def run_acceptance(
    root: HardwareRoot,
    device: Path | str,
    plan: dict[str, Any] | None = None,
    seconds: float = 2.0,
    *,
    cpu_workers: int | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run every step of ``plan`` (default: CPU, memory, disk, network) and judge each.

    Never raises for a failed step: the result lists every step, and ``passed`` is false when
    any failed, so the conductor stores the whole run. ``seconds`` bounds CPU + memory.
    """
    report = progress or _no_progress
    if seconds <= 0:
        raise MetalfleetError("burn-in duration must be positive")
    steps = list((plan or {}).get("steps") or [{"step": name} for name in DEFAULT_STEPS])
    run = Run(root, Path(device), seconds, cpu_workers)
    started = time.monotonic()
    results: list[Result] = []
    for index, step in enumerate(steps):
        name = str(step.get("step"))
        report(index * 100 // len(steps), f"acceptance step {name}")
        handler = STEPS.get(name)
        if handler is None:
            results.append(result(step, FAIL, None, f"this agent does not know the step {name}"))
            continue
        step_started = time.monotonic()
        try:
            outcome = handler(run, step)
        except (MetalfleetError, OSError, RuntimeError, ValueError) as exc:
            detail = getattr(exc, "detail", None) or f"{type(exc).__name__}: {exc}"
            outcome = result(step, FAIL, None, detail)
        outcome["elapsed_s"] = round(time.monotonic() - step_started, 3)
        results.append(outcome)
    failed = [r["step"] for r in results if r["status"] == FAIL]
    report(100, f"burn-in failed: {', '.join(failed)}" if failed else "burn-in passed")
    return {"format": FORMAT, "passed": not failed, "seconds": round(time.monotonic() - started, 3),
            "steps": results, **run.raw}
