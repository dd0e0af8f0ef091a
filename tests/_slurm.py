"""A real single-node SLURM cluster for the test suite (Debian's `slurm-wlm` and `munge` packages).

`start_cluster()` writes a munge key and a `slurm.conf` naming this host (`hostname -s`), its cores and
memory, with every state, spool, log and pid file under one temporary folder and the daemons on free ports
of 127.0.0.1; it then starts `munged` as the `munge` user and `slurmctld` and `slurmd` as root in the
foreground (`-D`), and waits until `sinfo` shows the node idle. No systemd, no cgroups, no accounting
database: `ProctrackType=proctrack/linuxproc`, `TaskPlugin=task/none`, `AccountingStorageType=none`.

Nothing can outlive the tests: every daemon runs with a parent-death signal (`setpriv --pdeathsig TERM`),
so it stops if pytest itself dies; `SlurmCluster.stop()` cancels the jobs, stops the daemons by their process
ids (TERM, then KILL of their own process groups after a timeout) and removes the folder; every client call
(`sbatch`, `squeue`, `sinfo`) has a timeout, so a hung daemon fails a test instead of hanging CI.

`missing_requirements()` says why a cluster cannot be started here (binaries absent, not root); the fixture
skips with that reason and fails, with the daemons' logs, when the packages are there but the cluster
does not come up. `.ci/run` installs the packages before `make test`.
"""

from __future__ import annotations

import atexit
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "scancel", "setpriv")
CLIENT_TIMEOUT = 30.0  # seconds for any one sbatch/squeue/sinfo/scontrol call
START_TIMEOUT = 60.0  # seconds for the node to become idle
STOP_TIMEOUT = 10.0  # seconds per daemon between TERM and KILL
PARTITION = "debug"


class SlurmUnavailable(RuntimeError):
    """The packages or privileges a local cluster needs are missing (tests skip with this reason)."""


def missing_requirements() -> str | None:
    """Why a local cluster cannot be started here, or None when it can."""
    absent = [b for b in BINARIES if shutil.which(b) is None]
    if absent:
        return (
            f"SLURM/munge binaries not found: {', '.join(absent)} "
            "(install with `apt-get install -y --no-install-recommends slurm-wlm munge`, as .ci/run does)"
        )
    if os.geteuid() != 0:
        return "a local SLURM cluster needs root (slurmd runs jobs as their user); tests run as a non-root user"
    try:
        pwd.getpwnam("munge")
    except KeyError:
        return "no 'munge' user (the munge package creates it): reinstall munge"
    return None


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _mem_total_mb() -> int:
    text = Path("/proc/meminfo").read_text()
    return int(re.search(r"^MemTotal:\s+(\d+) kB", text, re.M).group(1)) // 1024


def _ncpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # what `nproc` prints
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


@dataclass
class SlurmCluster:
    """A running single-node cluster; use `env` (it carries `SLURM_CONF`) for every client command."""

    root: Path
    conf: Path
    node: str
    cpus: int
    env: dict[str, str]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)

    # ------------------------------------------------------------------------------------------ clients
    def run(self, *args: str, timeout: float = CLIENT_TIMEOUT, check: bool = True, **kw) -> subprocess.CompletedProcess:
        """Run a SLURM client (`sinfo`, `squeue`, ...) against this cluster, with a timeout."""
        env = {**self.env, **kw.pop("env", {})}
        out = subprocess.run(list(args), env=env, capture_output=True, text=True, timeout=timeout, **kw)
        if check and out.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args)} exited {out.returncode}: {out.stderr.strip()}\n{self.log_tails()}"
            )
        return out

    def sbatch(self, *args: str, cwd: str | os.PathLike, env: dict[str, str] | None = None) -> str:
        """Submit with `sbatch --parsable`; returns the job id."""
        out = self.run("sbatch", "--parsable", *args, cwd=cwd, env=env or {})
        return out.stdout.strip().split(";")[0]

    def queued(self, job_id: str | None = None) -> list[str]:
        """Lines of `squeue` (job id, state) for one job or all jobs."""
        args = ["squeue", "-h", "-r", "-o", "%i %T"] + (["-j", job_id] if job_id else [])
        out = self.run(*args, check=False)
        if out.returncode != 0 and "Invalid job id" in out.stderr:
            return []  # finished and already purged
        if out.returncode != 0:
            raise RuntimeError(f"squeue failed: {out.stderr.strip()}\n{self.log_tails()}")
        return [ln for ln in out.stdout.splitlines() if ln.strip()]

    def wait(self, job_id: str, timeout: float = 300.0, poll: float = 0.5) -> None:
        """Wait until no task of `job_id` is pending or running; TimeoutError (with squeue) otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.queued(job_id)
            if not lines:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still queued after {timeout:.0f} s: {lines}\n{self.log_tails()}")
            time.sleep(poll)

    def node_state(self) -> str:
        out = self.run("sinfo", "-h", "-N", "-n", self.node, "-o", "%T", check=False, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else f"(sinfo failed: {out.stderr.strip()})"

    def log_tails(self, n: int = 15) -> str:
        parts = []
        for name, path in self.logs.items():
            try:
                lines = path.read_text(errors="replace").splitlines()[-n:]
            except OSError:
                lines = ["(no log)"]
            parts.append(f"--- {name} ({path}) ---\n" + "\n".join(lines))
        return "\n".join(parts)

    # ------------------------------------------------------------------------------------------ stop
    def stop(self) -> None:
        """Cancel all jobs, stop the daemons by their process ids and remove the folder. Idempotent."""
        if self.procs.get("slurmctld") is not None and self.procs["slurmctld"].poll() is None:
            try:
                self.run("scancel", f"--partition={PARTITION}", check=False, timeout=10)
                deadline = time.monotonic() + 20
                while self.queued() and time.monotonic() < deadline:
                    time.sleep(0.5)
            except (subprocess.TimeoutExpired, RuntimeError, OSError):
                pass  # the daemons are stopped below regardless
        for name in ("slurmd", "slurmctld", "munged"):  # clients first, munge last
            p = self.procs.pop(name, None)
            if p is None:
                continue
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    pass
            # the daemon's own process group (start_new_session): helpers such as slurmscriptd
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                p.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:  # pragma: no cover - unkillable
                pass
        shutil.rmtree(self.root, ignore_errors=True)


def _slurm_conf(root: Path, node: str, cpus: int, mem_mb: int, ports: list[int], munge_socket: Path) -> str:
    return "\n".join(
        [
            "# Single-node test cluster written by tests/_slurm.py (no systemd, cgroups or accounting).",
            "ClusterName=diffmriotest",
            f"SlurmctldHost={node}(127.0.0.1)",
            "SlurmUser=root",
            "SlurmdUser=root",
            f"SlurmctldPort={ports[0]}",
            f"SlurmdPort={ports[1]}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={munge_socket}",
            f"StateSaveLocation={root / 'state'}",
            f"SlurmdSpoolDir={root / 'spool'}",
            f"SlurmctldPidFile={root / 'run' / 'slurmctld.pid'}",
            f"SlurmdPidFile={root / 'run' / 'slurmd.pid'}",
            f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "MpiDefault=none",
            "SwitchType=switch/none",
            "ReturnToService=2",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=30",
            "MessageTimeout=10",
            "KillWait=5",
            "MinJobAge=600",
            "SchedulerParameters=batch_sched_delay=0,sched_min_interval=100000",
            f"NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN",
            f"PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP",
            "",
        ]
    )


def _start(cluster: SlurmCluster, name: str, argv: list[str], log: Path) -> None:
    with open(log, "ab") as fh:
        cluster.procs[name] = subprocess.Popen(
            ["setpriv", "--pdeathsig", "TERM", "--", *argv] if argv[0] != "setpriv" else argv,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=cluster.env,
        )


def _wait_for(cluster: SlurmCluster, what: str, ok, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        for name, p in cluster.procs.items():
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited ({p.returncode}) while waiting for {what}\n{cluster.log_tails()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached after {timeout:.0f} s\n{cluster.log_tails()}")
        time.sleep(0.25)


def start_cluster() -> SlurmCluster:
    """Start munged, slurmctld and slurmd on this host; returns the running cluster (call `stop()`).

    Raises `SlurmUnavailable` when the packages or root are missing, and RuntimeError/TimeoutError (with
    the daemons' logs) when they are there but the node does not become idle within `START_TIMEOUT`.
    """
    reason = missing_requirements()
    if reason:
        raise SlurmUnavailable(reason)
    root = Path(tempfile.mkdtemp(prefix="diffmrio-slurm-"))
    root.chmod(0o755)  # munged (user munge) must reach its socket folder
    for d in ("state", "spool", "log", "run"):
        (root / d).mkdir()
    munge_dir = root / "munge"
    munge_dir.mkdir(mode=0o755)
    mu = pwd.getpwnam("munge")
    key = munge_dir / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    os.chown(munge_dir, mu.pw_uid, mu.pw_gid)
    os.chown(key, mu.pw_uid, mu.pw_gid)
    node = socket.gethostname().split(".")[0]
    cpus = _ncpus()
    mem_mb = max(int(_mem_total_mb() * 0.9), 256)
    conf = root / "slurm.conf"
    sock = munge_dir / "munge.sock"
    conf.write_text(_slurm_conf(root, node, cpus, mem_mb, _free_ports(2), sock))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM")}
    env["SLURM_CONF"] = str(conf)
    cluster = SlurmCluster(
        root=root,
        conf=conf,
        node=node,
        cpus=cpus,
        env=env,
        logs={
            "munged": munge_dir / "munged.log",
            "slurmctld": root / "log" / "slurmctld.log",
            "slurmd": root / "log" / "slurmd.log",
        },
    )
    atexit.register(cluster.stop)
    try:
        _start(
            cluster,
            "munged",
            ["setpriv", "--reuid", str(mu.pw_uid), "--regid", str(mu.pw_gid), "--clear-groups",
             "--pdeathsig", "TERM", "--", "munged", "--foreground", f"--key-file={key}", f"--socket={sock}",
             f"--pid-file={munge_dir / 'munged.pid'}", f"--log-file={munge_dir / 'munged.log'}",
             f"--seed-file={munge_dir / 'munged.seed'}"],
            root / "log" / "munged.out",
        )
        _wait_for(cluster, "the munge socket", sock.exists, 20)
        _start(cluster, "slurmctld", ["slurmctld", "-D", "-i", "-f", str(conf)], root / "log" / "slurmctld.out")
        _start(cluster, "slurmd", ["slurmd", "-D", "-N", node, "-f", str(conf)], root / "log" / "slurmd.out")
        _wait_for(cluster, f"node {node} idle in sinfo", lambda: cluster.node_state() == "idle", START_TIMEOUT)
    except BaseException:
        cluster.stop()
        raise
    return cluster
