"""The FastAPI application: routes, error handling and the static image directory."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from metalfleet import __version__
from metalfleet.api import audit as audit_log
from metalfleet.api import limits, problems
from metalfleet.api.routes import (
    acceptance,
    agent,
    audit,
    boot,
    clusters,
    fleet,
    health,
    images,
    misc,
    nocloud,
    node_credentials,
    nodes,
    observability,
    resources,
    switch_access,
)
from metalfleet.health import rules as health_rules
from metalfleet.runtime import AppContext
from metalfleet.web import routes as web


def create_app(context: AppContext) -> FastAPI:
    app = FastAPI(
        title="metalfleet",
        version=__version__,
        description="Bare-metal cloud for GPU and HPC clusters. Auth: `Authorization: Bearer "
        "<token>`. Errors are RFC 7807 problem+json.",
    )
    app.state.context = context
    health_rules.configure_from(context.settings)
    problems.install(app)
    limits.install(app, context)  # bodies over settings.max_request_bytes: 413 (audited)
    audit_log.install(app, context)  # every mutating call -> the append-only audit log
    app.include_router(web.router)
    app.include_router(misc.router)
    app.include_router(nodes.router)
    app.include_router(acceptance.router)
    app.include_router(agent.router)
    app.include_router(boot.router)
    app.include_router(nocloud.router)
    app.include_router(fleet.router)
    app.include_router(clusters.router)
    app.include_router(health.router)
    app.include_router(audit.router)
    app.include_router(node_credentials.router)
    app.include_router(switch_access.router)
    app.include_router(observability.router)
    for router in context.routers:  # plug-ins' (the lab's, in a --lab process)
        app.include_router(router)
    app.include_router(images.router)  # before the generic /v1/images routes
    for router in resources.all_routers():
        app.include_router(router)
    images_dir = context.settings.data_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    # Nodes fetch images without a token, as from any image server; Starlette answers Range.
    app.mount("/images", StaticFiles(directory=images_dir), name="images")
    ramdisk_dir = context.settings.data_dir / "ramdisk"
    ramdisk_dir.mkdir(parents=True, exist_ok=True)
    app.mount("/boot/ramdisk", StaticFiles(directory=ramdisk_dir), name="ramdisk")
    return app
