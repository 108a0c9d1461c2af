"""The three tiers on free loopback ports for one benchmark, stopped on every way out (Ctrl-C, SIGTERM too).

The tiers are the local stack's own (`localstack.build_tiers`), so a benchmark measures what `make up` runs;
only the recogniser may be swapped for the synthetic one, and settings added per tier. Tier output goes to a
log file, whose tail is printed when a tier fails to start. Logs are at WARNING unless the caller says
otherwise, so that per-request log lines do not take CPU from the work being measured.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import psutil

from localstack.supervisor import StartupError, Supervisor
from localstack.tiers import HOST, build_tiers
from localstack.triton import free_port

MIB = 1024 * 1024


@dataclass
class Stack:
    gateway: str  # http://host:port
    triton_grpc: str  # host:port
    triton_http: str  # http://host:port
    vlm: str  # http://host:port
    log_path: Path
    supervisor: Supervisor

    def processes(self, tier: str) -> list[psutil.Process]:
        """The tier's leader and everything it started (gateway workers; Triton's model stubs)."""
        pid = self.supervisor.pid(tier)
        return [] if pid is None else process_tree(pid)

    def rss_mib(self, tier: str) -> float:
        """Resident memory of the tier's processes, summed."""
        return rss_mib(self.processes(tier))

    def cpu_seconds(self, tier: str) -> float:
        """User + system CPU seconds of the tier's live processes so far."""
        return cpu_seconds(self.processes(tier))


def process_tree(pid: int) -> list[psutil.Process]:
    """A process and all its descendants (empty if it is gone)."""
    try:
        leader = psutil.Process(pid)
        return [leader, *leader.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for proc in processes:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def rss_mib(processes: list[psutil.Process]) -> float:
    total = 0
    for proc in processes:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / MIB


def listener(port: int) -> int | None:
    """The process serving a local TCP port: for uvicorn's workers (multiprocessing children sharing their
    parent's socket), the parent that started them, so that its tree holds them all."""
    pid = next((c.pid for c in psutil.net_connections(kind="tcp")
                if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid), None)
    if pid is None:
        return None
    try:
        proc = psutil.Process(pid)
        while "multiprocessing" in " ".join(proc.cmdline()) and (parent := proc.parent()) is not None:
            proc = parent
        return proc.pid
    except psutil.NoSuchProcess:
        return None


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt while the block runs, so `finally` clauses stop the tiers."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def running_stack(
    *,
    synthetic: tuple[float, int] | None = None,
    gateway_env: Mapping[str, str] = {},
    triton_env: Mapping[str, str] = {},
    vlm_env: Mapping[str, str] = {},
    log_level: str = "WARNING",
    ready_timeout: float = 240.0,
) -> Iterator[Stack]:
    """Start recogniser, Triton and gateway, each once the one before is ready; stop all when the block ends.

    `synthetic=(service_time, parallel)` serves `vlm_server.synthetic` instead of the CPU recogniser.
    """
    ports = {key: str(free_port(HOST)) for key in
             ("HPS_VLM_PORT", "HPS_TRITON_HTTP_PORT", "HPS_TRITON_GRPC_PORT", "HPS_TRITON_METRICS_PORT",
              "HPS_GATEWAY_PORT")}
    logs = {"HPS_LOG_LEVEL": log_level}
    vlm, triton, gateway = build_tiers({**os.environ, **ports, **logs})
    if synthetic is not None:
        service_time, parallel = synthetic
        vlm = dataclasses.replace(vlm, argv=[
            sys.executable, "-m", "vlm_server.synthetic", "--host", HOST, "--port", ports["HPS_VLM_PORT"],
            "--service-time", str(service_time), "--parallel", str(parallel)])
    vlm = dataclasses.replace(vlm, env={**vlm.env, **vlm_env})
    triton = dataclasses.replace(triton, env={**triton.env, **logs, **triton_env})
    gateway = dataclasses.replace(gateway, env={**gateway.env, **gateway_env})

    log_dir = Path(tempfile.mkdtemp(prefix="bench-stack-"))
    log_path = log_dir / "tiers.log"
    failed = True
    with open(log_path, "w", encoding="utf-8") as log, stop_on_sigterm():
        supervisor = Supervisor([vlm, triton, gateway], out=log, ready_timeout=ready_timeout, grace=15)
        try:
            try:
                supervisor.start()
            except StartupError as exc:
                log.flush()
                tail = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
                raise SystemExit(f"bench: the stack did not start: {exc}\n{tail}") from None
            yield Stack(
                gateway=f"http://{HOST}:{ports['HPS_GATEWAY_PORT']}",
                triton_grpc=f"{HOST}:{ports['HPS_TRITON_GRPC_PORT']}",
                triton_http=f"http://{HOST}:{ports['HPS_TRITON_HTTP_PORT']}",
                vlm=f"http://{HOST}:{ports['HPS_VLM_PORT']}",
                log_path=log_path,
                supervisor=supervisor,
            )
            failed = False
        finally:
            supervisor.stop()
            if failed:
                print(f"bench: the tiers' output is in {log_path}", file=sys.stderr)
    if not failed:
        shutil.rmtree(log_dir, ignore_errors=True)
