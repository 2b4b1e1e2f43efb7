"""Stand-ins for scontrol and kubectl that record their argv (and can be told to fail)."""

from __future__ import annotations

import json
from pathlib import Path

SCRIPT = """#!/bin/sh
printf '%s\\n' "$(basename "$0") $*" >> {log}
[ -f {fail} ] && {{ echo "connection refused" >&2; exit 1; }}
exit 0
"""


class FakeBin:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = directory / "calls.log"
        self.fail_flag = directory / "fail"
        for tool in ("scontrol", "kubectl"):
            path = directory / tool
            path.write_text(SCRIPT.format(log=self.log, fail=self.fail_flag))
            path.chmod(0o755)

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def fail(self, on: bool = True) -> None:
        if on:
            self.fail_flag.touch()
        else:
            self.fail_flag.unlink(missing_ok=True)

    def slurm(self, conf: Path, **extra: object) -> dict[str, object]:
        """scheduler_config.slurm whose prefix runs the fake scontrol first on PATH."""
        return {"conf": str(conf), "prefix": ["env", f"PATH={self.dir}:/usr/bin:/bin"],
                "timeout_s": 5, **extra}

    def kubernetes(self) -> dict[str, object]:
        return {"kubectl": [str(self.dir / "kubectl"), "--kubeconfig", "/k",
                            "--token", "s3cret-k8s"]}


def dumps(value: object) -> str:
    return json.dumps(value, sort_keys=True)
