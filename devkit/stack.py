"""The three real tiers on free loopback ports, for tests and benchmarks: `running_stack(...)`.

The tiers are the local stack's own (`localstack.tiers.build_tiers` run by the local stack's `Supervisor`),
so what is tested and measured is what `make up` runs. Chosen per caller: the recogniser (the real CPU one,
the synthetic one, or any module serving the same API), and settings per tier. The supervisor watches the
tiers in a background thread, as `make up` does, so a tier that is killed comes back on the same port after
`restart_backoff` seconds while the others keep running. At the end every process group is stopped and
checked gone, and every port free again. While the stack runs, SIGTERM is turned into KeyboardInterrupt,
so that a benchmark stopped from outside still stops its tiers.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import psutil

from localstack.supervisor import StartupError, Supervisor
from localstack.tiers import DEFAULT_PORTS, HOST, build_tiers
from localstack.triton import free_port

ROOT = Path(__file__).resolve().parents[1]
TIERS = ("vlm", "triton", "gateway")
MIB = 1024 * 1024
RECOGNISER_MODULES = {"synthetic": "vlm_server.synthetic"}


def eventually(condition: Callable[[], Any], timeout: float, step: float = 0.1) -> Any:
    """Poll `condition` until it is truthy (returned) or `timeout` passes (the last falsy value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def process_tree(pid: int) -> list[psutil.Process]:
    """A process and all its descendants (empty if it is gone)."""
    try:
        leader = psutil.Process(pid)
        return [leader, *leader.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(processes: list[psutil.Process]) -> float:
    """User + system CPU seconds of the live processes so far."""
    total = 0.0
    for proc in processes:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def rss_bytes(processes: list[psutil.Process]) -> int:
    total = 0
    for proc in processes:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def rss_mib(processes: list[psutil.Process]) -> float:
    return rss_bytes(processes) / MIB


@dataclass
class Stack:
    supervisor: Supervisor
    ports: dict[str, int]
    log_path: Path
    groups: set[int] = field(default_factory=set)  # every process group a tier ever had

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.ports['HPS_GATEWAY_PORT']}"

    @property
    def vlm_url(self) -> str:
        return f"http://{HOST}:{self.ports['HPS_VLM_PORT']}"

    @property
    def triton_grpc(self) -> str:
        return f"{HOST}:{self.ports['HPS_TRITON_GRPC_PORT']}"

    @property
    def triton_http(self) -> str:
        return f"http://{HOST}:{self.ports['HPS_TRITON_HTTP_PORT']}"

    @property
    def triton_metrics(self) -> str:
        return f"http://{HOST}:{self.ports['HPS_TRITON_METRICS_PORT']}/metrics"

    def pid(self, tier: str) -> int:
        pid = self.supervisor.pid(tier)
        assert pid is not None, f"{tier} is not running"
        self.groups.add(pid)  # each tier leads its own process group
        return pid

    def signal(self, tier: str, sig: signal.Signals = signal.SIGKILL) -> int:
        """Send `sig` to the tier's main process (as a crash or `docker stop` would); returns its pid."""
        pid = self.pid(tier)
        os.kill(pid, sig)
        return pid

    def processes(self, tier: str) -> list[psutil.Process]:
        """The tier's leader and everything it started (gateway workers; Triton's model stubs)."""
        pid = self.supervisor.pid(tier)
        return [] if pid is None else process_tree(pid)

    def rss(self, tier: str) -> int:
        """Resident memory of the tier's processes, in bytes."""
        return rss_bytes(self.processes(tier))

    def cpu_seconds(self, tier: str) -> float:
        return cpu_seconds(self.processes(tier))

    def ready(self) -> httpx.Response:
        return httpx.get(f"{self.url}/health/ready", timeout=10)

    def wait_ready(self, timeout: float = 60) -> None:
        def ok() -> bool:
            try:
                return self.ready().status_code == 200
            except httpx.HTTPError:
                return False

        assert eventually(ok, timeout, 0.2), f"the stack was not ready within {timeout} s:\n{self.log_tail()}"

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the gateway's samples of `name` whose labels include `labels`."""
        total = 0.0
        for line in httpx.get(f"{self.url}/metrics", timeout=10).text.splitlines():
            if line.startswith((name + "{", name + " ")):
                head, _, value = line.rpartition(" ")
                if all(f'{k}="{v}"' in head for k, v in labels.items()):
                    total += float(value)
        return total

    def slots_free(self, timeout: float = 5) -> bool:
        """True once no request holds or waits for a gateway slot (inference and non-inference pools)."""
        def idle() -> bool:
            return (self.metric("gateway_requests_in_flight") == 0
                    and self.metric("gateway_requests_queued") == 0)

        return bool(eventually(idle, timeout, 0.1))

    def log_tail(self, chars: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def recogniser_argv(kind: str, port: int, args: Sequence[str]) -> list[str]:
    """`cpu`: the offline recogniser; `synthetic`, or any module taking `--host` and `--port`."""
    if kind == "cpu":
        return [sys.executable, "-m", "vlm_server", *args]  # listens on HPS_VLM_HOST:HPS_VLM_PORT
    module = RECOGNISER_MODULES.get(kind, kind)
    return [sys.executable, "-m", module, "--host", HOST, "--port", str(port), *args]


@contextmanager
def running_stack(
    log_dir: Path | None = None,
    *,
    recogniser: str = "cpu",
    recogniser_args: Sequence[str] = (),
    vlm_env: Mapping[str, str] | None = None,
    engine_env: Mapping[str, str] | None = None,
    gateway_env: Mapping[str, str] | None = None,
    workers: int | None = None,
    log_level: str | None = None,
    inherit: bool = False,
    restart_backoff: float = 1.0,
    ready_timeout: float = 180,
    grace: float = 15,
) -> Iterator[Stack]:
    """Start recogniser, Triton and gateway (each once the one before is ready) and yield once the gateway's
    `/health/ready` answers 200; stop everything afterwards and check that nothing is left.

    `workers`: the gateway's uvicorn workers (default: the gateway's own default). `log_level`: of every
    tier (a benchmark keeps per-request lines out of what it measures with WARNING). `inherit`: keep the
    caller's HPS_* settings (a benchmark runs what its environment says; tests start from the defaults).
    `log_dir`: where the tiers' output goes (default: a temporary directory, removed after a clean stop)."""
    own_logs = log_dir is None
    log_dir = Path(tempfile.mkdtemp(prefix="stack-")) if log_dir is None else log_dir
    ports = {key: free_port(HOST) for key in DEFAULT_PORTS}
    settings = ("PROMETHEUS_",) if inherit else ("HPS_", "UVICORN_", "PROMETHEUS_")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(settings)}
    environ.update({key: str(port) for key, port in ports.items()})
    environ["PYTHONPATH"] = str(ROOT)  # this checkout's packages, whatever an editable install maps
    if log_level is not None:
        environ["HPS_LOG_LEVEL"] = log_level
    environ.setdefault("HPS_JOB_DATA_DIR", str(log_dir / f"jobs-{ports['HPS_GATEWAY_PORT']}"))   # its own
    tiers = {t.name: t for t in build_tiers(environ, ROOT)}
    tiers["vlm"].argv = recogniser_argv(recogniser, ports["HPS_VLM_PORT"], recogniser_args)
    tiers["vlm"].env = {**tiers["vlm"].env, **(vlm_env or {})}
    tiers["triton"].env = {**tiers["triton"].env, **(engine_env or {})}
    workers_env = {} if workers is None else {"UVICORN_WORKERS": str(workers)}
    tiers["gateway"].env = {**tiers["gateway"].env, **workers_env, **(gateway_env or {})}

    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"stack-{ports['HPS_GATEWAY_PORT']}.log"
    with open(log_path, "w", encoding="utf-8") as out, _sigterm_interrupts():
        supervisor = Supervisor(list(tiers.values()), out=out, ready_timeout=ready_timeout, grace=grace,
                                backoff=restart_backoff, max_backoff=restart_backoff * 4)
        stack = Stack(supervisor, ports, log_path)
        watcher = threading.Thread(target=supervisor.watch, name="stack-watch", daemon=True)
        try:
            try:
                supervisor.start()
            except StartupError as exc:
                out.flush()
                raise RuntimeError(f"the stack did not start: {exc}\n{stack.log_tail(3000)}") from None
            for name in TIERS:
                stack.pid(name)
            watcher.start()
            stack.wait_ready(ready_timeout)
            yield stack
        finally:
            supervisor.request_stop()
            if watcher.is_alive():
                watcher.join(timeout=10)
            for name in TIERS:
                if supervisor.pid(name) is not None:
                    stack.pid(name)
            supervisor.stop()
    left = [g for g in stack.groups if _group_alive(g)]
    busy = [p for p in ports.values() if not eventually(partial(_port_free, p), 10)]
    assert not left and not busy, f"left behind: process groups {left}, ports {busy}\n{stack.log_tail()}"
    if own_logs:
        shutil.rmtree(log_dir, ignore_errors=True)
