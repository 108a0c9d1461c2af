"""The three real tiers on free loopback ports, for end-to-end tests: `running_stack(...)`.

The stack is the local stack's own (`localstack.build_tiers` run by `localstack.supervisor.Supervisor`), with
three things chosen per test module: the recogniser (the real CPU one, the synthetic one, or the faulty one
of this package), the engine's settings (Triton's environment) and the gateway's. The supervisor watches the
tiers in a background thread, as `make up` does, so a tier a test kills comes back on the same port after
`restart_backoff` seconds while the others keep running. At the end every process group is stopped and
checked gone, and every port free again.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from localstack.supervisor import Supervisor
from localstack.tiers import DEFAULT_PORTS, HOST, build_tiers
from localstack.triton import free_port

ROOT = Path(__file__).resolve().parents[2]
TIERS = ("vlm", "triton", "gateway")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def eventually(condition: Callable[[], Any], timeout: float, step: float = 0.1) -> Any:
    """Poll `condition` until it is truthy (returned) or `timeout` passes (the last falsy value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def recogniser_argv(kind: str, port: int, args: list[str]) -> list[str]:
    if kind == "cpu":
        return [sys.executable, "-m", "vlm_server", *args]  # listens on HPS_VLM_HOST:HPS_VLM_PORT
    module = {"synthetic": "vlm_server.synthetic", "faulty": "tests.e2e.faulty_recogniser"}[kind]
    return [sys.executable, "-m", module, "--host", HOST, "--port", str(port), *args]


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

    def rss(self, tier: str) -> int:
        """Resident memory of the tier's process and all its children (Triton's model stubs, say)."""
        proc = psutil.Process(self.pid(tier))
        total = 0
        for p in [proc, *proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

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


@contextmanager
def running_stack(
    log_dir: Path,
    *,
    recogniser: str = "cpu",
    recogniser_args: list[str] | None = None,
    engine_env: Mapping[str, str] | None = None,
    gateway_env: Mapping[str, str] | None = None,
    restart_backoff: float = 1.0,
    ready_timeout: float = 120,
) -> Iterator[Stack]:
    """Start recogniser, Triton and gateway (each once the one before is ready) and yield once the gateway's
    `/health/ready` answers 200; stop everything afterwards and check that nothing is left."""
    ports = {key: free_port(HOST) for key in DEFAULT_PORTS}
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("HPS_", "UVICORN_", "PROMETHEUS_"))}
    environ.update({key: str(port) for key, port in ports.items()})
    environ["PYTHONPATH"] = str(ROOT)  # this checkout's packages, whatever an editable install maps
    tiers = {t.name: t for t in build_tiers(environ, ROOT)}
    tiers["vlm"].argv = recogniser_argv(recogniser, ports["HPS_VLM_PORT"], list(recogniser_args or []))
    tiers["triton"].env = {**tiers["triton"].env, **(engine_env or {})}
    tiers["gateway"].env = {**tiers["gateway"].env, "UVICORN_WORKERS": "1", **(gateway_env or {})}

    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"stack-{ports['HPS_GATEWAY_PORT']}.log"
    with open(log_path, "w", encoding="utf-8") as out:
        supervisor = Supervisor(list(tiers.values()), out=out, ready_timeout=ready_timeout,
                                backoff=restart_backoff, max_backoff=restart_backoff * 4)
        stack = Stack(supervisor, ports, log_path)
        watcher = threading.Thread(target=supervisor.watch, name="stack-watch", daemon=True)
        try:
            supervisor.start()
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
    busy = [p for p in ports.values() if not eventually(lambda p=p: _port_free(p), 10)]
    assert not left and not busy, f"left behind: process groups {left}, ports {busy}\n{stack.log_tail()}"
