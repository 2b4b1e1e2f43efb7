"""`metalfleet up --lab N`: start the lab's BMC emulator, build the lab, run the autopilot."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from sqlalchemy import select

from metalfleet.db import models as m
from metalfleet.inventory import resources
from metalfleet.lab import autopilot
from metalfleet.lab.bmc_emulator import BmcServer, LabBmcEmulator, start_bmc_server
from metalfleet.lab.exporters import publish as publish_exporters
from metalfleet.lab.exporters import start_lab_exporters
from metalfleet.lab.fleet import ensure_nodes, ensure_topology, layout
from metalfleet.lab.handle import close_lab, open_lab
from metalfleet.lab.image import LAB_IMAGE_FILE, LAB_IMAGE_NAME, build_lab_image
from metalfleet.runtime import AppContext

log = logging.getLogger(__name__)

POWER_DELAY_S = 1.0  # real BMCs take a while to apply power changes; so does the lab's
LAB_BMC_HEALTH_INTERVAL_S = 5.0  # the conductor's BMC sensor sweep in `up --lab`


def start_lab_bmcs(context: AppContext) -> tuple[LabBmcEmulator, BmcServer]:
    """The emulator keeps its state in the data dir and reuses its port across restarts."""
    lab_dir = context.settings.data_dir / "lab"
    lab_dir.mkdir(parents=True, exist_ok=True)
    config_file = lab_dir / "lab.json"
    config = json.loads(config_file.read_text()) if config_file.exists() else {}
    emulator = LabBmcEmulator(state_file=lab_dir / "bmc-state.json", power_delay=POWER_DELAY_S)
    try:
        server = start_bmc_server(emulator, port=int(config.get("bmc_port", 0)))
    except OSError:
        log.warning("lab BMC port %s is taken; moving the lab BMCs to a new port",
                    config.get("bmc_port"))
        server = start_bmc_server(emulator, port=0)
    config_file.write_text(json.dumps({**config, "bmc_port": server.port}))
    return emulator, server


def ensure_lab_image(context: AppContext) -> None:
    _, digest, size = build_lab_image(context.settings.data_dir / "images")
    location = f"{context.settings.resolved_public_url()}/images/{LAB_IMAGE_FILE}"
    kind = resources.KINDS["images"]
    with context.db.session() as session:
        image = session.scalar(select(m.Image).where(m.Image.name == LAB_IMAGE_NAME))
        if image is None:
            resources.create(session, kind, kind.create_schema.model_validate({
                "name": LAB_IMAGE_NAME, "os": "Ubuntu 22.04 (lab)", "kernel_version": "5.15",
                "driver_version": "550.90.07", "cuda_version": "12.4", "disk_format": "raw",
                "location": location, "sha256": digest, "size_bytes": size}))
        elif image.location != location or image.sha256 != digest:
            image.location, image.sha256, image.size_bytes = location, digest, size


def build_lab(context: AppContext, count: int, emulator: LabBmcEmulator,
              server: BmcServer) -> list[str]:
    roots = context.settings.data_dir / "lab" / "nodes"
    with context.db.session() as session:
        ensure_topology(session, count)
    with context.db.session() as session:
        created = ensure_nodes(session, count, emulator, server.system_address, roots,
                               context.cipher)
    ensure_lab_image(context)
    return created


def lab_task(count: int, interval_s: float = 1.0) -> Callable[[AppContext],
                                                             Coroutine[Any, Any, None]]:
    async def run(context: AppContext) -> None:
        emulator, server = await asyncio.to_thread(start_lab_bmcs, context)
        stack = contextlib.ExitStack()
        try:
            created = await asyncio.to_thread(build_lab, context, count, emulator, server)
            log.info("lab: %d nodes (%d new), BMCs at %s", count, len(created), server.base_url)
            exporters = await asyncio.to_thread(start_lab_exporters, context.settings.data_dir)
            stack.callback(exporters.stop)
            await asyncio.to_thread(publish_exporters, context.db, exporters.address,
                                    [plan.name for plan in layout(count)])
            lab = await asyncio.to_thread(open_lab, context, emulator)
            stack.callback(close_lab, context, lab)
            while True:
                moved = await asyncio.to_thread(autopilot.step, context.db)
                if moved:
                    context.wake_conductor()
                await asyncio.sleep(interval_s)
        finally:
            await asyncio.to_thread(stack.close)
            await asyncio.to_thread(server.stop)

    return run
