"""Stopping `make up` (`python -m localstack`) with SIGTERM: every tier drains and exits within its grace, no
SIGKILL is needed, nothing of ours is left in /dev/shm or the temporary directory, and a start removes what a
crashed stack left behind (only that: never what belongs to a live process).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from devkit.documents import b64, sample_pdf
from devkit.stack import ROOT, eventually
from localstack.tiers import DEFAULT_PORTS, HOST
from localstack.triton import SHM_DIR, SHM_PREFIX, free_port

pytestmark = pytest.mark.slow

DRAIN = 20.0   # HPS_DRAIN_TIMEOUT of these stacks: the supervisor's grace is this and 10 s more
RUN_DIRS = Path(tempfile.gettempdir())


@dataclass
class LocalStack:
    proc: subprocess.Popen[str]
    url: str
    log: Path

    def tier_pid(self, marker: str) -> int:
        """The leader of the tier whose command line holds `marker` (`tritonserver`, `-m gateway`)."""
        for child in psutil.Process(self.proc.pid).children():
            if marker in " ".join(child.cmdline()):
                return child.pid
        raise AssertionError(f"no tier running {marker!r}:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> float:
        """SIGTERM, as `docker stop` or a service manager sends it; the seconds it took to exit."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(DRAIN + 40) == 0, self.log.read_text()[-3000:]
        return time.monotonic() - started


@contextmanager
def make_up(tmp_path: Path) -> Iterator[LocalStack]:
    ports = {key: str(free_port(HOST)) for key in DEFAULT_PORTS}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HPS_", "UVICORN_", "PROMETHEUS_"))}
    env |= ports | {"HPS_DRAIN_TIMEOUT": str(DRAIN), "PYTHONPATH": str(ROOT)}
    log = tmp_path / "make-up.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "localstack"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, text=True)
    stack = LocalStack(proc, f"http://{HOST}:{ports['HPS_GATEWAY_PORT']}", log)
    try:
        ready = eventually(lambda: "localstack | ready" in log.read_text() or proc.poll() is not None, 180)
        assert ready and proc.poll() is None, log.read_text()[-3000:]
        yield stack
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def leftovers(triton: int, gateway: int) -> list[str]:
    """What stopped tiers left: that Triton's shared-memory regions, that gateway's run directory."""
    regions = [p.name for p in SHM_DIR.glob(f"{SHM_PREFIX}{triton}_*")]
    run_dirs = [p.name for p in RUN_DIRS.glob(f"paddleocr-vl-gateway-{gateway}-*")]
    return regions + run_dirs


def test_sigterm_with_nothing_in_flight_stops_every_tier_cleanly(tmp_path: Path) -> None:
    with make_up(tmp_path) as stack:
        triton, gateway = stack.tier_pid("tritonserver"), stack.tier_pid("-m gateway")
        assert list(SHM_DIR.glob(f"{SHM_PREFIX}{triton}_*")), "Triton names its regions after itself"
        assert list(RUN_DIRS.glob(f"paddleocr-vl-gateway-{gateway}-*")), "the gateway's workers share one"
        took = stack.stop()
    log = stack.log.read_text()
    assert "killing it" not in log and took < 15, log[-3000:]
    assert "successfully unloaded 'layout-parsing'" in log      # Triton unloaded its models
    assert leftovers(triton, gateway) == []


async def test_sigterm_under_load_lets_the_requests_in_flight_finish(tmp_path: Path) -> None:
    body = {"file": b64(sample_pdf(1)[0]), "fileType": 0, "visualize": False}
    with make_up(tmp_path) as stack:
        triton, gateway = stack.tier_pid("tritonserver"), stack.tier_pid("-m gateway")
        async with httpx.AsyncClient(timeout=120) as client:
            calls = [asyncio.ensure_future(client.post(f"{stack.url}/layout-parsing", json=body))
                     for _ in range(3)]
            await asyncio.sleep(1.0)   # all three are in the engine by now (each takes seconds on the CPU)
            stopping = asyncio.ensure_future(asyncio.to_thread(stack.stop))
            answers = await asyncio.gather(*calls)
            took = await stopping
    assert [a.status_code for a in answers] == [200] * 3, [a.text[:200] for a in answers]
    assert all(a.json()["errorCode"] == 0 for a in answers)
    log = stack.log.read_text()
    assert "killing it" not in log and took < DRAIN + 10, log[-3000:]
    assert leftovers(triton, gateway) == []


def test_a_start_removes_what_dead_stacks_left_and_nothing_else(tmp_path: Path) -> None:
    dead = 4_194_303   # above the kernel's default pid_max: no process has it
    me = os.getpid()
    started = Path(f"/proc/{me}/stat").read_text().rsplit(")", 1)[1].split()[19]
    planted = {
        "dead region": SHM_DIR / f"{SHM_PREFIX}{dead}_1234_region",
        "reused PID": SHM_DIR / f"{SHM_PREFIX}{me}_{int(started) + 1}_region",   # our PID, another start
        "live region": SHM_DIR / f"{SHM_PREFIX}{me}_{started}_region",
        "dead run dir": RUN_DIRS / f"paddleocr-vl-gateway-{dead}-left",
        "live run dir": RUN_DIRS / f"paddleocr-vl-gateway-{me}-kept",
    }
    for name, path in planted.items():
        if name.endswith("run dir"):
            path.mkdir()
        else:
            path.write_bytes(b"\0" * 16)
    try:
        with make_up(tmp_path) as stack:
            stack.stop()
        assert {name for name, path in planted.items() if path.exists()} == {"live region", "live run dir"}
    finally:
        for path in planted.values():
            if path.is_dir():
                path.rmdir()
            else:
                path.unlink(missing_ok=True)
