"""`metalfleet up --lab N` in a subprocess, for the end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import free_port

BIN = Path(sys.executable).parent


class Lab:
    def __init__(self, data_dir: Path, db_url: str, size: int = 8,
                 extra_args: tuple[str, ...] = ()) -> None:
        self.data_dir = data_dir
        self.db_url = db_url
        self.size = size
        self.extra_args = extra_args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / "up.log"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(BIN / "metalfleet"), "up", "--lab", str(self.size), "--port", str(self.port),
                 "--data-dir", str(self.data_dir), "--database-url", self.db_url,
                 *self.extra_args],
                stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "metalfleet up did not answer in 60 s"
            time.sleep(0.3)

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "METALFLEET_URL": self.url, "COLUMNS": "200"}
        env.pop("METALFLEET_TOKEN", None)
        result = subprocess.run(
            [str(BIN / "metalfleet"), "--data-dir", str(self.data_dir), *args],
            capture_output=True, text=True, env=env, timeout=300,
        )
        if check:
            assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
        return result

    def nodes(self) -> list[dict[str, Any]]:
        return list(json.loads(self.cli("node", "list", "-o", "json").stdout))
