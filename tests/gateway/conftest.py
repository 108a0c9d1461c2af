"""Real parts for the gateway tests: one Triton server per session serving the test models, stub VLM health
endpoints, and gateways started as `python -m gateway` subprocesses on free loopback ports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from localstack.triton import TritonProcess, free_port, start_triton

MODELS = Path(__file__).parent / "triton_models"
REPO = Path(__file__).resolve().parents[2]
CONTROL = "_gatewayTest"  # the test models' steering field


class Events:
    """What the test models recorded (start / finish / cancelled), by logId."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def all(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def of(self, log_id: str) -> list[str]:
        return [e["event"] for e in self.all() if e["logId"] == log_id]

    def wait_for(self, log_id: str, event: str, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if event in self.of(log_id):
                return True
            time.sleep(0.05)
        return False


@pytest.fixture(scope="session")
def events(tmp_path_factory: pytest.TempPathFactory) -> Events:
    return Events(tmp_path_factory.mktemp("triton") / "events.jsonl")


@pytest.fixture(scope="session")
def triton(tmp_path_factory: pytest.TempPathFactory, events: Events) -> Iterator[TritonProcess]:
    log = tmp_path_factory.mktemp("triton-log") / "triton.log"
    with start_triton(MODELS, env_overrides={"HPS_TEST_EVENTS": str(events.path)}, log_path=log) as server:
        yield server


class StubVLM:
    """An HTTP server whose GET /health answers `status`; counts the probes it gets."""

    def __init__(self) -> None:
        self.status = 200
        self.hits = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                stub.hits += 1
                self.send_response(stub.status if self.path == "/health" else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def vlm() -> Iterator[StubVLM]:
    stub = StubVLM()
    yield stub
    stub.close()


class Gateway:
    """`python -m gateway` in its own process, configured only by the environment it is given."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"gateway-{self.port}.log"
        clean = {k: v for k, v in os.environ.items()
                 if not k.startswith(("HPS_", "UVICORN_", "GPU_", "PROMETHEUS_"))}
        clean.update({"HPS_GATEWAY_HOST": "127.0.0.1", "HPS_GATEWAY_PORT": str(self.port),
                      "UVICORN_WORKERS": "1", "HPS_LOG_LEVEL": "INFO", **env,
                      # This checkout's packages, whatever an (older) editable install maps.
                      "PYTHONPATH": str(REPO)})
        with open(self.log_path, "wb") as log:
            # The working directory has no .env, so only `env` configures it.
            self.proc = subprocess.Popen([sys.executable, "-m", "gateway"], cwd=workdir, env=clean,
                                         stdout=log, stderr=subprocess.STDOUT)

    def wait_healthy(self, timeout: float = 30) -> Gateway:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gateway not healthy within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def sigterm(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 15) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def slots_free(self, timeout: float = 5) -> bool:
        """True once no request holds or waits for a slot (in-flight and queued gauges at 0)."""
        deadline = time.monotonic() + timeout
        while self.metric("gateway_requests_in_flight") or self.metric("gateway_requests_queued"):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of `name` whose labels include `labels`."""
        total = 0.0
        for line in httpx.get(f"{self.url}/metrics", timeout=5).text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                head, _, value = line.rpartition(" ")
                if all(f'{k}="{v}"' in head for k, v in labels.items()):
                    total += float(value)
        return total


@pytest.fixture(scope="session")
def start_gateway(tmp_path_factory: pytest.TempPathFactory, triton: TritonProcess) -> Iterator[Any]:
    """`start_gateway(HPS_X="...")` -> a healthy Gateway on the session's Triton, stopped at the end."""
    started: list[Gateway] = []
    workdir = tmp_path_factory.mktemp("gateways")

    def start(**env: str) -> Gateway:
        env.setdefault("HPS_TRITON_URL", triton.url_grpc)
        gateway = Gateway(env, workdir)
        started.append(gateway)
        return gateway.wait_healthy()

    yield start
    for gateway in started:
        gateway.stop()


def new_id() -> str:
    return f"test-{uuid.uuid4()}"


def layout_body(log_id: str | None = None, **control: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"file": "aGVsbG8=", "fileType": 1}
    if log_id:
        body["logId"] = log_id
    if control:
        body[CONTROL] = control
    return body
