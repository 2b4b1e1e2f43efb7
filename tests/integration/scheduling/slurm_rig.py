"""A real Slurm (munged, slurmctld, one slurmd per node) inside a network namespace.

Slurm's daemons listen on every address, so they run only inside a namespace made for the
test: a veth pair gives it a non-loopback IPv4 address (10.250.0.1/24) that Slurm resolves
itself by. ``nsenter --net=`` (not ``ip netns exec``, which remounts /sys) starts them.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from metalfleet.scheduling.slurm.config import SlurmSite
from metalfleet.scheduling.slurm.control import SlurmControl

ADDRESS = "10.250.0.1"
DBD_PORT = 6900  # slurmd ports are 6819 and up
BINARIES = ("munged", "slurmctld", "slurmd", "sinfo", "srun", "scontrol", "nsenter", "ip",
            "setpriv", "timeout")


def require_binaries() -> None:
    missing = [b for b in BINARIES
               if shutil.which(b) is None and not Path(f"/usr/sbin/{b}").exists()]
    if missing:
        pytest.fail(f"Slurm test needs {', '.join(missing)}: apt-get install -y slurmctld "
                    "slurmd munge slurm-client (and util-linux, iproute2)")


def _run(*args: str) -> None:
    done = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip() or done.returncode}")


class SlurmRig:
    def __init__(self, node_names: list[str]) -> None:
        self.tag = secrets.token_hex(3)
        self.netns = f"mfslurm-{self.tag}"
        self.veth = f"mfs{self.tag}"
        # munged wants every directory above its socket searchable by all: not pytest's tmp.
        self.dir = Path(tempfile.mkdtemp(prefix="mf-slurm-"))
        self.dir.chmod(0o755)
        self.node_names = node_names
        self.processes: list[subprocess.Popen[bytes]] = []
        self.namespace_made = False
        self.nsenter = ("nsenter", f"--net=/run/netns/{self.netns}")
        self.conf = self.dir / "etc" / "slurm.conf"
        self.control = SlurmControl(conf=self.conf, prefix=self.nsenter, timeout_s=10)

    # --- the parts ------------------------------------------------------------------------

    def site(self) -> SlurmSite:
        host = socket.gethostname().split(".")[0]
        for sub in ("etc", "state", "spool", "log", "dev"):
            (self.dir / sub).mkdir(exist_ok=True)
        return SlurmSite(
            cluster_name="mftest", controller=host, controller_addr=ADDRESS, slurm_user="root",
            state_dir=str(self.dir / "state"), spool_dir=str(self.dir / "spool"),
            log_dir=str(self.dir / "log"), run_dir=str(self.dir),
            gpu_device_prefix=str(self.dir / "dev" / "gpu"), autodetect_nvml=False,
            config_overrides=True,
            node_addr={n: ADDRESS for n in self.node_names},
            node_hostname={n: host for n in self.node_names},
            node_port={n: 6818 + i for i, n in enumerate(self.node_names, start=1)},
            extra=[f"AuthInfo=socket={self.dir / 'munge' / 'munge.socket'}"],
        )

    def make_gpu_devices(self, count: int) -> None:
        for i in range(count):
            os.mknod(self.dir / "dev" / f"gpu{i}", 0o666 | stat.S_IFCHR, os.makedev(1, 3))

    def _namespace(self) -> None:
        _run("ip", "netns", "add", self.netns)
        self.namespace_made = True
        _run("ip", "link", "add", f"{self.veth}a", "type", "veth", "peer", "name",
             f"{self.veth}b")
        _run("ip", "link", "set", f"{self.veth}b", "netns", self.netns)
        _run("ip", "link", "set", f"{self.veth}a", "up")
        _run(*self.nsenter, "ip", "addr", "add", f"{ADDRESS}/24", "dev", f"{self.veth}b")
        _run(*self.nsenter, "ip", "link", "set", f"{self.veth}b", "up")
        _run(*self.nsenter, "ip", "link", "set", "lo", "up")

    def _spawn(self, *args: str, log: str) -> None:
        out = (self.dir / "log" / log).open("wb")
        self.processes.append(subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                               env={**os.environ, "SLURM_CONF": str(self.conf)},
                                               start_new_session=True))

    def _munged(self) -> None:
        munge = self.dir / "munge"
        munge.mkdir(mode=0o755)
        key = munge / "munge.key"
        key.write_bytes(os.urandom(128))
        key.chmod(0o600)
        shutil.chown(munge, "munge", "munge")
        shutil.chown(key, "munge", "munge")
        self._spawn("setpriv", "--reuid", "munge", "--regid", "munge", "--init-groups",
                    "munged", "-F", f"--key-file={key}", f"--socket={munge}/munge.socket",
                    f"--pid-file={munge}/munged.pid", f"--log-file={munge}/munged.log",
                    f"--seed-file={munge}/seed", log="munged.out")
        self._wait(lambda: (munge / "munge.socket").exists(), 10, "munged to create its socket")

    def accounting_site(self) -> SlurmSite:
        """The site with accounting through the rig's slurmdbd (start(accounting=True))."""
        site = self.site()
        return dataclasses.replace(
            site, accounting_host=ADDRESS, accounting_port=DBD_PORT,
            # Slurm reaches slurmdbd with the munge socket named by AccountingStoragePass.
            extra=[*site.extra, f"AccountingStoragePass={self.dir / 'munge' / 'munge.socket'}"])

    def _slurmdbd(self) -> None:
        """MariaDB (loopback of the namespace, no grants: a throwaway) and slurmdbd."""
        for binary in ("mariadb-install-db", "mariadbd", "slurmdbd"):
            if shutil.which(binary) is None and not Path(f"/usr/sbin/{binary}").exists():
                pytest.fail(f"the accounting test needs {binary}: apt-get install -y "
                            "mariadb-server slurmdbd")
        data = self.dir / "mysql"
        data.mkdir()
        _run("mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=root",
             "--auth-root-authentication-method=normal", "--skip-test-db")
        self._spawn(*self.nsenter, "mariadbd", "--no-defaults", f"--datadir={data}",
                    f"--socket={data}/sock", "--bind-address=127.0.0.1", "--port=3306",
                    "--user=root", "--skip-grant-tables", f"--pid-file={data}/pid",
                    log="mariadb.out")
        conf = self.conf.parent / "slurmdbd.conf"
        conf.write_text("\n".join([
            "AuthType=auth/munge", f"AuthInfo=socket={self.dir / 'munge' / 'munge.socket'}",
            f"DbdHost={socket.gethostname().split('.')[0]}", f"DbdAddr={ADDRESS}",
            f"DbdPort={DBD_PORT}", "SlurmUser=root", "StorageType=accounting_storage/mysql",
            "StorageHost=127.0.0.1", "StoragePort=3306", "StorageUser=root",
            "StorageLoc=slurm_acct_db", f"PidFile={self.dir / 'slurmdbd.pid'}",
            f"LogFile={self.dir / 'log' / 'slurmdbd.log'}"]) + "\n")
        conf.chmod(0o600)
        self._wait(lambda: (data / "sock").exists(), 30, "mariadbd to start")
        self._spawn(*self.nsenter, "slurmdbd", "-D", log="slurmdbd.out")
        self._wait(self._dbd_answers, 30, "slurmdbd to answer")

    def _dbd_answers(self) -> bool:
        try:
            self.control.run("sacctmgr", "-n", "show", "cluster")
        except Exception:
            return False
        return True

    def start(self, accounting: bool = False,
              before_controller: Callable[[], None] | None = None) -> None:
        """Start everything, the rendered config already in ``self.dir / 'etc'``; with
        ``accounting`` MariaDB and slurmdbd first, then ``before_controller`` (sacctmgr)."""
        self._namespace()
        self._munged()
        if accounting:
            self._slurmdbd()
        if before_controller is not None:
            before_controller()
        self._spawn(*self.nsenter, "slurmctld", "-D", "-f", str(self.conf), log="ctld.out")
        self._wait(lambda: self._answers(), 20, "slurmctld to answer")
        for name in self.node_names:
            self._spawn(*self.nsenter, "slurmd", "-D", "-N", name, "-f", str(self.conf),
                        log=f"slurmd-{name}.out")

    def _answers(self) -> bool:
        try:
            self.control.run("scontrol", "ping")
        except Exception:
            return False
        return True

    def _wait(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            for process in self.processes:
                if process.poll() is not None:
                    raise AssertionError(
                        f"{process.args!r} exited ({process.returncode}) "
                        f"while waiting for {what}; logs:\n{self.logs()}")
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; logs:\n{self.logs()}")

    def wait_states(self, wanted: dict[str, str], timeout: float = 30) -> None:
        def reached() -> bool:
            try:
                states = self.control_states()
            except Exception:
                return False
            return all(states.get(n, ("", ""))[0] == s for n, s in wanted.items())

        self._wait(reached, timeout, f"node states {wanted}")

    def control_states(self) -> dict[str, tuple[str, str]]:
        from metalfleet.scheduling.slurm.control import node_states

        return node_states(self.control)

    def logs(self) -> str:
        parts = []
        for path in sorted((self.dir / "log").glob("*")):
            text = path.read_text(errors="replace")[-2000:]
            parts.append(f"--- {path.name}\n{text}")
        return "\n".join(parts)

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in reversed(self.processes):
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if self.namespace_made:
            subprocess.run(["ip", "netns", "del", self.netns], capture_output=True, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)
