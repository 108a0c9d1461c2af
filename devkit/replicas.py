"""Several replicas of the tiers on one machine, as Kubernetes runs them on several: Triton + recogniser pairs
without a gateway (`triton_pairs`), and gateways in front of them (`gateway_replica`), each on free loopback
ports, for the multi-replica tests and the replicas benchmark.

A pair is the local stack's own recogniser and Triton tiers (`localstack.tiers`), started in order by the
local stack's `Supervisor`; nothing restarts a tier that is killed, so that a killed pair stays down, as a
pod that is gone. Every Triton lists every pair's recogniser in `HPS_VLM_URL` (the engine balances them), as
the Triton pods of the Kubernetes manifests list every vLLM pod.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from devkit.stack import ROOT, eventually, recogniser_argv
from localstack.supervisor import Supervisor
from localstack.tiers import DEFAULT_PORTS, HOST, build_tiers
from localstack.triton import free_port

SETTING_PREFIXES = ("HPS_", "UVICORN_", "PROMETHEUS_")


def clean_environ() -> dict[str, str]:
    """This process's environment without any tier's settings: each replica gets only what it is given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SETTING_PREFIXES)}
    return env | {"PYTHONPATH": str(ROOT)}   # this checkout's packages, whatever an editable install maps


@dataclass
class Pair:
    """One recogniser and the Triton in front of it."""

    name: str
    supervisor: Supervisor
    ports: dict[str, int]

    @property
    def triton_grpc(self) -> str:
        return f"{HOST}:{self.ports['HPS_TRITON_GRPC_PORT']}"

    @property
    def vlm_url(self) -> str:
        return f"http://{HOST}:{self.ports['HPS_VLM_PORT']}"

    def served(self) -> int:
        """Recognition calls this pair's (synthetic) recogniser has answered."""
        return int(httpx.get(f"{self.vlm_url}/stats", timeout=10).json()["served"])

    def inferences(self, model: str) -> int:
        """Requests this pair's Triton has answered with success for `model` (its Prometheus counter)."""
        url = f"http://{HOST}:{self.ports['HPS_TRITON_METRICS_PORT']}/metrics"
        prefix = f'nv_inference_request_success{{model="{model}"'
        lines = httpx.get(url, timeout=10).text.splitlines()
        return sum(int(float(line.rpartition(" ")[2])) for line in lines if line.startswith(prefix))

    def kill(self) -> None:
        """Both processes of the pair SIGKILLed, as a node that is lost; they stay down."""
        for tier in ("triton", "vlm"):
            pid = self.supervisor.pid(tier)
            if pid is not None:
                os.killpg(pid, signal.SIGKILL)


@contextmanager
def triton_pairs(count: int, log_dir: Path, *, recogniser: str = "synthetic",
                 recogniser_args: Sequence[str] = (), engine_env: Mapping[str, str] | None = None,
                 ready_timeout: float = 180) -> Iterator[list[Pair]]:
    """`count` pairs, each Triton balancing over every pair's recogniser; all stopped afterwards."""
    ports = [{key: free_port(HOST) for key in DEFAULT_PORTS} for _ in range(count)]
    vlm_urls = ",".join(f"http://{HOST}:{p['HPS_VLM_PORT']}" for p in ports)
    log_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        pairs = []
        for index, own in enumerate(ports):
            name = f"pair-{index}"
            environ = clean_environ() | {key: str(port) for key, port in own.items()}
            environ["HPS_JOB_DATA_DIR"] = str(log_dir / f"jobs-{name}")
            vlm, triton, _gateway = build_tiers(environ, ROOT)
            vlm.argv = recogniser_argv(recogniser, own["HPS_VLM_PORT"], recogniser_args)
            triton.env = {**triton.env, "HPS_VLM_URL": vlm_urls, **(engine_env or {})}
            out = stack.enter_context(open(log_dir / f"{name}.log", "w", encoding="utf-8"))
            supervisor = Supervisor([vlm, triton], out=out, ready_timeout=ready_timeout, grace=15)
            stack.callback(supervisor.stop)
            supervisor.start()
            pairs.append(Pair(name, supervisor, own))
        yield pairs


@contextmanager
def gateway_replica(triton_url: str, vlm_url: str, env: Mapping[str, str], log: Path,
                    ) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A gateway (`python -m gateway`, one worker unless `env` says otherwise) in front of the given Tritons
    and recognisers; yields its URL once `/health` answers, and its process. Killed afterwards."""
    port = free_port()
    environ = clean_environ() | {
        "HPS_GATEWAY_HOST": HOST, "HPS_GATEWAY_PORT": str(port), "UVICORN_WORKERS": "1",
        "HPS_TRITON_URL": triton_url, "HPS_VLM_URL": vlm_url, "NO_PROXY": HOST, "no_proxy": HOST,
        "HPS_JOB_DATA_DIR": str(log.parent / f"jobs-{port}"), **env}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gateway"], cwd=ROOT, env=environ, stdout=out,
                                stderr=subprocess.STDOUT)
    url = f"http://{HOST}:{port}"
    try:
        def up() -> bool:
            try:
                return httpx.get(f"{url}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return proc.poll() is not None   # gone: stop waiting, the assert below says so

        assert eventually(up, 60) and proc.poll() is None, log.read_text()
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
