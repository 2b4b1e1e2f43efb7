"""The VM lab's background process: QEMU VMs and their Redfish BMC emulator.

Run as `python -m metalfleet.lab.vm.daemon STATE_DIR`; it writes STATE_DIR/daemon.json
({pid, port}) once the BMCs answer, and stops every VM on SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path

from metalfleet.lab.bmc_model import LabNic, LabSystem
from metalfleet.lab.bmc_server import start_bmc_server
from metalfleet.lab.vm.bmc import VmBmcEmulator
from metalfleet.lab.vm.lab import specs
from metalfleet.lab.vm.machines import Machines


def main(state_dir: Path) -> None:
    vm_specs = specs(state_dir)
    machines = Machines(vm_specs)
    emulator = VmBmcEmulator(machines, state_file=state_dir / "bmc-state.json")
    vms = {vm["id"]: vm for vm in json.loads((state_dir / "vms.json").read_text())}
    for system_id, spec in vm_specs.items():
        if emulator.get(system_id) is None:
            vm = vms[system_id]
            emulator.add_system(LabSystem(
                id=system_id, name=spec.name, manufacturer="QEMU", model="Standard PC (i440FX)",
                serial=spec.name, memory_gib=max(1, spec.memory_mib // 1024),
                processors=[{"ProcessorType": "CPU", "Model": "QEMU Virtual CPU",
                             "TotalCores": spec.cpus, "TotalThreads": spec.cpus}],
                nics=[LabNic(mac=spec.mac, speed_mbps=1000)],
                username=vm["username"], password=vm["password"]))
    server = start_bmc_server(emulator)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    (state_dir / "daemon.json").write_text(json.dumps({"pid": os.getpid(), "port": server.port}))
    try:
        stop.wait()
    finally:
        machines.stop_all()
        server.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
