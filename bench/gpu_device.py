"""Benchmark and check: the agent's GPU paths on a real NVIDIA GPU, against NVML and torch.

Runs on a GPU machine with torch and nvidia-ml-py (nothing of the control plane needed):

    PYTHONPATH=src python3 bench/gpu_device.py --out results/      # about 2 minutes on an H200

1. Inventory: agent/nvml.py's reader (recording every pynvml call and answer, for the replay
   unit tests) and the agent's inventory, compared field by field with ``nvidia-smi -q -x``.
2. Health: the agent's in-band checks on the real GPU (expected: nothing found), and the
   exporter's DCGM_FI_DEV_* values against NVML and nvidia-smi read in the same run.
3. Acceptance: the GPU steps of an H200 class plan (health/acceptance_plan.py) run by the
   agent, each with its time, beside plain torch measurements timed with CUDA events (the
   best large bf16 GEMM, a large device copy, pinned host<->device copies): the ratio
   acceptance / plain is what the step's figure is worth.

Writes ``gpu_device.json`` (everything), ``nvml_recording.json`` (the replay fixture) and
``nvidia-smi.xml`` to ``--out``; GPU serial numbers are replaced by "REDACTED" in all three.
Prints a summary table last.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from metalfleet.agent import acceptance, exporter, health, inventory, nvidia_smi
from metalfleet.agent import nvml as agent_nvml
from metalfleet.agent.hardware_root import HardwareRoot
from metalfleet.health.acceptance_plan import plan_for

GIB = 1024**3
# Fields that move between two reads a few ms apart: compared within a tolerance.
DYNAMIC = {"memory_used_mib": 64, "utilization_gpu_pct": 100, "temperature_c": 3,
           "power_w": 0.25, "clock_graphics_mhz": 0.5, "clock_sm_mhz": 0.5,
           "clock_memory_mhz": 0.5, "clocks_throttle_reasons": None, "pcie_link_gen": None}


# --- pynvml recording -----------------------------------------------------------------------


class Recorder:
    """Stands in for the pynvml module and writes down every call and its answer."""

    def __init__(self, module: Any) -> None:
        self._module = module
        self._handles: dict[int, int] = {}
        self.calls: list[dict[str, Any]] = []
        self.constants: dict[str, Any] = {}

    def _arg(self, value: Any) -> Any:
        if id(value) in self._handles:
            return {"__handle__": self._handles[id(value)]}
        return _jsonable(value)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._module, name)
        if not callable(value):
            if isinstance(value, int | float | str):
                self.constants[name] = value
            return value
        if not name.startswith("nvml"):
            return value  # error classes, helpers

        def call(*args: Any, **kwargs: Any) -> Any:
            entry: dict[str, Any] = {"fn": name, "args": [self._arg(a) for a in args],
                                     "kwargs": {k: self._arg(v) for k, v in kwargs.items()}}
            try:
                answer = value(*args, **kwargs)
            except Exception as exc:
                entry["error"] = {"type": type(exc).__name__, "value": getattr(exc, "value", None),
                                  "text": str(exc)}
                self.calls.append(entry)
                raise
            if name == "nvmlDeviceGetHandleByIndex":
                self._handles[id(answer)] = int(args[0])
                entry["result"] = {"__handle__": int(args[0])}
            else:
                entry["result"] = _jsonable(answer)
            self.calls.append(entry)
            return answer

        return call


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes):
        return {"__bytes__": value.decode("utf-8", errors="replace")}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    fields = getattr(value, "_fields_", None)
    if fields:
        return {"__struct__": {f[0]: _jsonable(getattr(value, f[0])) for f in fields}}
    return {"__repr__": repr(value)}


# --- comparisons ----------------------------------------------------------------------------


def compare(ours: dict[str, Any], smi: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """One row per field either side knows: equal, within tolerance, or differing."""
    rows = []
    for key in sorted(set(ours) | set(smi)):
        if key in {"index", "minor_number"}:
            continue
        a, b = ours.get(key), smi.get(key)
        if a is None or b is None:
            verdict = "only-ours" if b is None else "only-nvidia-smi"
        elif key == "pci_bus_id":  # NVML's 8-digit domain or sysfs's 4: one address
            verdict = "equal" if health.sysfs_bus_id(str(a)) == health.sysfs_bus_id(str(b)) \
                else "differs"
        elif key in DYNAMIC:
            tolerance = DYNAMIC[key]
            if tolerance is None:
                verdict = "equal" if a == b else "moved"  # idle-dependent: not a defect
            elif isinstance(tolerance, float):
                verdict = "equal" if abs(float(a) - float(b)) <= tolerance * max(
                    abs(float(b)), 1.0) else "moved"
            else:
                verdict = "equal" if abs(float(a) - float(b)) <= tolerance else "moved"
        elif isinstance(a, float) or isinstance(b, float):
            verdict = "equal" if abs(float(a) - float(b)) <= 0.01 * max(abs(float(b)), 1) \
                else "differs"
        else:
            verdict = "equal" if a == b else "differs"
        rows.append({"where": where, "field": key, "ours": a, "nvidia_smi": b,
                     "verdict": verdict})
    return rows


def exporter_values(text: str) -> dict[str, float]:
    """``DCGM_FI_DEV_X{gpu="0",...} v`` lines of GPU 0 -> {metric: value}."""
    values = {}
    for line in text.splitlines():
        match = re.match(r'^(DCGM_FI_DEV_\w+)\{([^}]*)\}\s+(\S+)$', line)
        if match and 'gpu="0"' in match.group(2):
            values[match.group(1)] = float(match.group(3))
    return values


# --- plain torch references -----------------------------------------------------------------


def event_time(torch: Any, op: Callable[[], Any], reps: int, warmup: int = 3) -> float:
    """Median seconds of one ``op``, CUDA events around each of ``reps`` runs."""
    for _ in range(warmup):
        op()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        op()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1000.0)
    return statistics.median(times)


def sustained_gemm(torch: Any, n: int, seconds: float) -> dict[str, Any]:
    """bf16 products back to back for ``seconds`` (two CUDA events around all of them), with
    NVML read while they run: the clocks, power and event reasons under sustained load."""
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    c = torch.empty_like(a)
    one = event_time(torch, lambda: torch.matmul(a, b, out=c), reps=10)
    reps = max(10, int(seconds / one))
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        torch.matmul(a, b, out=c)
    end.record()
    time.sleep(seconds * 0.6)
    during = (agent_nvml.read_nvml() or {"devices": [{}]})["devices"][0]
    end.synchronize()
    elapsed = start.elapsed_time(end) / 1000.0
    keys = ("clock_sm_mhz", "clock_memory_mhz", "power_w", "power_limit_w", "temperature_c",
            "clocks_throttle_reasons", "utilization_gpu_pct")
    return {"tflops": round(2.0 * n**3 * reps / elapsed / 1e12, 1), "reps": reps,
            "seconds": round(elapsed, 3), "burst_tflops": round(2.0 * n**3 / one / 1e12, 1),
            "nvml_during": {k: during.get(k) for k in keys}}


def plain_torch(torch: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"gemm_tflops": {}}
    for n in (4096, 8192, 16384):
        a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
        c = torch.empty_like(a)
        seconds = event_time(torch, lambda a=a, b=b, c=c: torch.matmul(a, b, out=c),
                             reps=30 if n < 16384 else 15)
        out["gemm_tflops"][str(n)] = round(2.0 * n**3 / seconds / 1e12, 1)
        del a, b, c
    out["gemm_best_tflops"] = max(out["gemm_tflops"].values())
    out["gemm_sustained"] = sustained_gemm(torch, 8192, 2.0)
    # The agent's own timing (host clock, a sync every 4 products) at two lengths, right
    # after: does the method or the duration explain a gap to the burst figure?
    out["agent_tflops_0.05s"] = round(acceptance._tflops(torch, 0, 1, 0.05), 1)
    out["agent_tflops_1s"] = round(acceptance._tflops(torch, 0, 1, 1.0), 1)
    for size_gib in (1, 4):
        src = torch.empty(size_gib * GIB, dtype=torch.uint8, device="cuda")
        src.random_(0, 255)
        dst = torch.empty_like(src)
        seconds = event_time(torch, lambda s=src, d=dst: d.copy_(s), reps=20)
        out[f"copy_{size_gib}gib_gbs"] = round(2.0 * size_gib * GIB / seconds / 1e9, 1)
        del src, dst
    out["copy_best_gbs"] = max(out["copy_1gib_gbs"], out["copy_4gib_gbs"])
    host = torch.empty(GIB, dtype=torch.uint8, pin_memory=True)
    dev = torch.empty(GIB, dtype=torch.uint8, device="cuda")
    out["h2d_1gib_gbs"] = round(GIB / event_time(
        torch, lambda: dev.copy_(host, non_blocking=True), reps=10) / 1e9, 1)
    out["d2h_1gib_gbs"] = round(GIB / event_time(
        torch, lambda: host.copy_(dev, non_blocking=True), reps=10) / 1e9, 1)
    return out


# --- the run --------------------------------------------------------------------------------


class H200Class:
    """The class data a plan reads, as a lab or operator would declare an H200 node."""

    name, gpu_model, gpu_count, ib_ports, ib_rate_gbps = "h200-1", "NVIDIA H200", 1, 0, 0
    extra: ClassVar[dict[str, Any]] = {}


def section(report: dict[str, Any], name: str, work: Callable[[], Any]) -> None:
    started = time.perf_counter()
    try:
        report[name] = work()
    except Exception:
        report[name] = {"error": traceback.format_exc()}
    report.setdefault("section_seconds", {})[name] = round(time.perf_counter() - started, 2)


def redact(text: str, serials: list[str]) -> str:
    for serial in serials:
        if serial:
            text = text.replace(serial, "REDACTED")
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu-results"))
    parser.add_argument("--seconds", type=float, default=None,
                        help="per GPU step (default: the agent's GPU_MEASURE_S)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    root = HardwareRoot("/")
    report: dict[str, Any] = {"python": sys.version, "platform": platform.platform()}

    xml_text = subprocess.run(["nvidia-smi", "-q", "-x"], capture_output=True, text=True,
                              check=True, timeout=60).stdout
    smi = nvidia_smi.parse(xml_text)
    report["nvidia_smi"] = smi

    def nvml_recorded() -> dict[str, Any]:
        import pynvml  # type: ignore[import-not-found]

        pynvml.nvmlInit()
        recorder = Recorder(pynvml)
        try:
            answers = agent_nvml.read_nvml(recorder)
        finally:
            pynvml.nvmlShutdown()
        version = getattr(pynvml, "__version__", None)
        report["nvml_recording"] = {"format": "metalfleet-nvml-recording/1",
                                    "pynvml_version": version,
                                    "constants": recorder.constants, "calls": recorder.calls}
        return answers or {}

    section(report, "nvml", nvml_recorded)
    section(report, "nvml_default_path", lambda: agent_nvml.read_nvml())

    def comparisons() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        ours = report["nvml"]
        rows += compare({k: ours.get(k) for k in ("driver_version", "cuda_version")},
                        {k: smi.get(k) for k in ("driver_version", "cuda_version")}, "system")
        for mine, theirs in zip(ours.get("devices", []), smi["devices"], strict=False):
            rows += compare(mine, theirs, f"nvml GPU{mine['index']}")
        return rows

    section(report, "nvml_vs_nvidia_smi", comparisons)
    section(report, "inventory", lambda: {
        k: v for k, v in inventory.collect_inventory(root).items()
        if k in {"gpus", "gpu_driver", "pci"}})

    def inventory_vs_smi() -> list[dict[str, Any]]:
        inv = report["inventory"]
        gpu = (inv.get("gpus") or [{}])[0]
        theirs = smi["devices"][0]
        mapped = {"name": gpu.get("name"), "uuid": gpu.get("uuid"),
                  "memory_total_mib": gpu.get("memory_mib"),
                  "pci_bus_id": gpu.get("pci_bus_id")}
        mapped.update({k: gpu[k] for k in inventory.GPU_INVENTORY_FIELDS if k in gpu})
        return compare(mapped, {k: theirs.get(k) for k in mapped}, "inventory GPU0") + compare(
            dict(inv.get("gpu_driver") or {}),
            {k: smi.get(k) for k in ("driver_version", "cuda_version")}, "inventory driver")

    section(report, "inventory_vs_nvidia_smi", inventory_vs_smi)

    def checks() -> dict[str, Any]:
        found = health.run_checks(root, {"gpu_count": len(smi["devices"])})
        return {"findings": found.findings, "checks_run": found.checks_run,
                "not_applicable": found.not_applicable, "reasons": found.reasons}

    section(report, "health_checks", checks)

    def exported() -> dict[str, Any]:
        text = exporter.collect(root)
        fresh = nvidia_smi.read_nvidia_smi() or {"devices": [{}]}
        values = exporter_values(text)
        theirs = fresh["devices"][0]
        pairs = {"DCGM_FI_DEV_GPU_TEMP": "temperature_c", "DCGM_FI_DEV_POWER_USAGE": "power_w",
                 "DCGM_FI_DEV_FB_USED": "memory_used_mib",
                 "DCGM_FI_DEV_GPU_UTIL": "utilization_gpu_pct",
                 "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL": "ecc_corrected_volatile",
                 "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": "ecc_uncorrected_volatile",
                 "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS": "remapped_rows_correctable",
                 "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS": "remapped_rows_uncorrectable",
                 "DCGM_FI_DEV_ROW_REMAP_FAILURE": "remap_failure",
                 "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS": "clocks_throttle_reasons",
                 "DCGM_FI_DEV_PCIE_LINK_WIDTH": "pcie_link_width",
                 "DCGM_FI_DEV_PCIE_LINK_GEN": "pcie_link_gen"}
        rows = compare({field: values.get(metric) for metric, field in pairs.items()},
                       {field: (float(theirs[field]) if field in theirs else None)
                        for field in pairs.values()}, "exporter GPU0")
        return {"metrics": values, "vs_nvidia_smi": rows,
                "metric_names": sorted({line.split("{")[0].split(" ")[0]
                                        for line in text.splitlines()
                                        if line.startswith("DCGM_")})}

    section(report, "exporter", exported)

    def accept() -> dict[str, Any]:
        plan = plan_for(H200Class())
        steps = [s for s in plan["steps"] if s["step"] in
                 ("gpu-inventory", *acceptance.GPU_PERF_STEPS)]
        if args.seconds:
            for step in steps:
                step["seconds"] = args.seconds
        started = time.perf_counter()
        run = acceptance.run_acceptance(root, "/dev/null", {"steps": steps}, seconds=1.0)
        run["wall_s"] = round(time.perf_counter() - started, 2)
        return run

    section(report, "acceptance", accept)

    def accept_short() -> dict[str, Any]:  # what a 4x shorter budget costs in accuracy
        plan = plan_for(H200Class())
        steps = [dict(s, seconds=0.25) for s in plan["steps"]
                 if s["step"] in acceptance.GPU_PERF_STEPS]
        return acceptance.run_acceptance(root, "/dev/null", {"steps": steps}, seconds=1.0)

    section(report, "acceptance_short", accept_short)

    def environment() -> dict[str, Any]:
        def out(argv: list[str]) -> str:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                                  check=False)
            return (done.stdout or done.stderr).strip()[:400]

        return {"uname": platform.uname()._asdict(),
                "kern_log": Path("/var/log/kern.log").exists(),
                "journalctl": out(["sh", "-c", "command -v journalctl || echo absent"]),
                "dmesg_nvrm": out(["sh", "-c", "dmesg 2>&1 | grep -i -m5 nvrm || true"]),
                "nvidia_smi_version": out(["nvidia-smi", "--version"]),
                "gpu_pci_sysfs": out(["sh", "-c", "for d in /sys/bus/pci/devices/*; do "
                                      "[ \"$(cat $d/vendor)\" = 0x10de ] && echo $d "
                                      "$(cat $d/class $d/current_link_width "
                                      "$d/max_link_width $d/current_link_speed "
                                      "$d/max_link_speed 2>&1); done; true"])}

    section(report, "environment", environment)

    def reference() -> dict[str, Any]:
        import torch  # type: ignore[import-not-found]

        props = torch.cuda.get_device_properties(0)
        return {"torch": torch.__version__, "cuda": torch.version.cuda, "device": props.name,
                "total_memory_mib": props.total_memory // (1024 * 1024),
                "sms": props.multi_processor_count, **plain_torch(torch)}

    section(report, "plain_torch", reference)

    serials = [str(d.get("serial") or "") for d in smi["devices"]]
    recording = report.pop("nvml_recording", None)
    (args.out / "nvidia-smi.xml").write_text(redact(xml_text, serials))
    if recording is not None:
        (args.out / "nvml_recording.json").write_text(
            redact(json.dumps(recording, indent=1), serials))
    (args.out / "gpu_device.json").write_text(redact(json.dumps(report, indent=1, default=str),
                                                     serials))
    summary(report)
    return 0


def summary(report: dict[str, Any]) -> None:
    print("\n== NVML / inventory / exporter vs nvidia-smi ==")
    for name in ("nvml_vs_nvidia_smi", "inventory_vs_nvidia_smi"):
        rows = report.get(name)
        if not isinstance(rows, list):
            print(name, "ERROR", str(rows)[-800:])
            continue
        for row in rows:
            if row["verdict"] != "equal":
                print(f"{row['where']:18} {row['field']:28} ours={row['ours']!r:24} "
                      f"smi={row['nvidia_smi']!r:24} {row['verdict']}")
        print(f"{name}: {sum(r['verdict'] == 'equal' for r in rows)} of {len(rows)} equal")
    exp = report.get("exporter") or {}
    if "vs_nvidia_smi" in exp:
        for row in exp["vs_nvidia_smi"]:
            print(f"{row['where']:18} {row['field']:28} ours={row['ours']!r:12} "
                  f"smi={row['nvidia_smi']!r:12} {row['verdict']}")
    else:
        print("exporter", str(exp)[-800:])
    print("\n== health checks ==")
    print(json.dumps(report.get("health_checks"), default=str)[:1500])
    print("\n== acceptance (agent) vs plain torch (CUDA events) ==")
    run = report.get("acceptance") or {}
    ref = report.get("plain_torch") or {}
    baseline = {"gpu-compute": ref.get("gemm_best_tflops"),
                "gpu-memory-bandwidth": ref.get("copy_best_gbs"),
                "host-to-device": ref.get("h2d_1gib_gbs"),
                "device-to-host": ref.get("d2h_1gib_gbs")}
    short = {s["step"]: s for s in (report.get("acceptance_short") or {}).get("steps", [])}
    for step in run.get("steps", []):
        base = baseline.get(step["step"])
        ratio = (f"{step['measured'] / base:.3f}" if base and isinstance(
            step.get("measured"), int | float) else "-")
        print(f"{step['step']:22} {step['status']:15} measured={step['measured']!s:10} "
              f"{step.get('unit') or '':7} threshold={step.get('threshold')!s:8} "
              f"plain={base!s:8} ratio={ratio:6} elapsed={step.get('elapsed_s')}s "
              f"| 0.25s: {short.get(step['step'], {}).get('measured')} "
              f"in {short.get(step['step'], {}).get('elapsed_s')}s")
    if "error" in run:
        print("acceptance ERROR", run["error"][-1500:])
    print("idle before:", json.dumps({k: (report.get("nvml") or {}).get("devices", [{}])[0].get(k)
                                      for k in ("clock_sm_mhz", "power_w", "temperature_c")}))
    print("plain torch:", json.dumps({k: v for k, v in ref.items() if k != "error"}),
          ref.get("error", "")[-1500:])
    print("sections (s):", json.dumps(report.get("section_seconds")))
    print("environment:", json.dumps(report.get("environment"), default=str)[:1500])
    for name, value in report.items():
        if isinstance(value, dict) and "error" in value and name not in {"acceptance",
                                                                          "plain_torch"}:
            print(f"{name} ERROR:", value["error"][-1200:])


if __name__ == "__main__":
    raise SystemExit(main())
