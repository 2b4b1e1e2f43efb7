import http.server
import json
import threading
from pathlib import Path
from typing import Any

from metalfleet.agent.boot import parse_cmdline, run
from metalfleet.agent.hardware_root import HardwareRoot
from metalfleet.lab.synthetic_hardware import build_root, cpu_node_spec


def test_parse_cmdline_keeps_only_metalfleet_parameters() -> None:
    line = "BOOT_IMAGE=/vmlinuz console=ttyS0 metalfleet.callback=http://10.0.2.2:8/cb " \
           "metalfleet.after=reboot metalfleet.flag quiet\n"
    assert parse_cmdline(line) == {"callback": "http://10.0.2.2:8/cb", "after": "reboot"}


def test_boot_reports_inventory_to_the_callback(tmp_path: Path) -> None:
    received: list[dict[str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        spec = cpu_node_spec(3)
        root = build_root(tmp_path / "root", spec)
        url = f"http://127.0.0.1:{server.server_address[1]}/cb"
        report = run(HardwareRoot(root), f"quiet metalfleet.callback={url}")
    finally:
        server.shutdown()
    assert report["callback_status"] == 204 and report["after"] == "poweroff"
    assert len(received) == 1
    nics = {n["mac"] for n in received[0]["inventory"]["nics"]}
    assert nics == {nic.mac for nic in spec.nics}
