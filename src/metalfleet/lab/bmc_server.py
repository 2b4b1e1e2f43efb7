"""Run the lab BMC emulator's Redfish service with uvicorn in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from metalfleet.lab.bmc_model import LabBmcEmulator
from metalfleet.lab.redfish_app import build_app
from metalfleet.lab.redfish_payloads import SYSTEMS


class BmcServer:
    """A running emulator service; ``stop()`` shuts it down (also usable as a context manager)."""

    def __init__(self, emulator: LabBmcEmulator, server: uvicorn.Server,
                 thread: threading.Thread, host: str, port: int, scheme: str) -> None:
        self.emulator = emulator
        self.host = host
        self.port = port
        self.scheme = scheme
        self._server = server
        self._thread = thread

    @property
    def app(self) -> FastAPI:
        app = self._server.config.app
        assert isinstance(app, FastAPI)
        return app

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def system_address(self, system_id: str) -> str:
        """The BMC address a node enrolls with: ``<base_url>/redfish/v1/Systems/<id>``."""
        return f"{self.base_url}{SYSTEMS}/{system_id}"

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> BmcServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_bmc_server(
    emulator: LabBmcEmulator,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    ssl_certfile: Path | None = None,
    ssl_keyfile: Path | None = None,
    startup_timeout: float = 10.0,
) -> BmcServer:
    """Serve ``emulator`` on ``host:port`` (port 0: a free one) and wait until it accepts."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    bound_port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        build_app(emulator), log_level="warning", access_log=False, lifespan="off",
        ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
        ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name=f"lab-bmc-{bound_port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"lab BMC server on {host}:{bound_port} did not start")
        time.sleep(0.01)
    scheme = "https" if ssl_certfile else "http"
    return BmcServer(emulator, server, thread, host, bound_port, scheme)
