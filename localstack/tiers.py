"""The three tiers of the local stack, CPU profile, as processes on loopback: what each runs and needs.

    CPU recogniser  python -m vlm_server     127.0.0.1:8118            (HPS_VLM_PORT)
    Triton          tritonserver (pytriton)  127.0.0.1:8000/8001/8002  (HPS_TRITON_{HTTP,GRPC,METRICS}_PORT)
    gateway         python -m gateway        127.0.0.1:8080            (HPS_GATEWAY_PORT)

`make up` runs them (`localstack.__main__`), and so do the end-to-end tests and the benchmarks, on free ports.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from localstack.supervisor import Tier
from localstack.triton import ALLOCATOR, PASSTHROUGH_PREFIXES, triton_command

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
DEFAULT_PORTS = {
    "HPS_VLM_PORT": 8118,
    "HPS_TRITON_HTTP_PORT": 8000,
    "HPS_TRITON_GRPC_PORT": 8001,
    "HPS_TRITON_METRICS_PORT": 8002,
    "HPS_GATEWAY_PORT": 8080,
}


def ports(environ: Mapping[str, str]) -> dict[str, int]:
    """The port of each role, from the environment where set."""
    out = {}
    for key, default in DEFAULT_PORTS.items():
        value = environ.get(key, "").strip()
        if value and not (value.isdigit() and 0 < int(value) < 65536):
            raise SystemExit(f"localstack: {key}={value!r} is not a port number")
        out[key] = int(value) if value else default
    return out


def build_tiers(environ: Mapping[str, str], root: Path = ROOT) -> list[Tier]:
    p = ports(environ)
    vlm_url = f"http://{HOST}:{p['HPS_VLM_PORT']}"
    triton_http = f"http://{HOST}:{p['HPS_TRITON_HTTP_PORT']}"
    gateway_url = f"http://{HOST}:{p['HPS_GATEWAY_PORT']}"
    # Python children: our environment (over the allocator's default), unbuffered logs, and never a proxy for
    # loopback calls.
    loopback = f"{HOST},localhost"
    base = {**ALLOCATOR, **environ, "PYTHONUNBUFFERED": "1", "NO_PROXY": loopback, "no_proxy": loopback}
    profile = {"HPS_PROFILE": "cpu", "HPS_VLM_URL": vlm_url}

    vlm = Tier("vlm", [sys.executable, "-m", "vlm_server"],
               env={**base, "HPS_VLM_HOST": HOST, "HPS_VLM_PORT": str(p["HPS_VLM_PORT"])},
               ready_url=f"{vlm_url}/health", cwd=str(root))

    argv, triton_env = triton_command(
        root / "triton_repo", host=HOST, http_port=p["HPS_TRITON_HTTP_PORT"],
        grpc_port=p["HPS_TRITON_GRPC_PORT"], metrics_port=p["HPS_TRITON_METRICS_PORT"],
        work_dir=root / ".run" / "triton")
    # The CPU recogniser queues 64 calls behind 2 workers: keep the engine's VLM bound well inside that. The
    # ONNX layout model reads one page at a time, so batches of pages only make a newcomer's page wait.
    cpu_defaults = {"HPS_VLM_MAX_CONCURRENCY": "16", "HPS_LAYOUT_BATCH_SIZE": "1"}
    # triton_command passes the process's own HPS_*/OMP_* on; `environ` may be another mapping (tests).
    passed = {k: v for k, v in environ.items() if k.startswith(PASSTHROUGH_PREFIXES)}
    triton = Tier("triton", argv, env={**cpu_defaults, **triton_env, **passed, **profile},
                  ready_url=f"{triton_http}/v2/health/ready",
                  cwd=str(root))

    jobs = {"HPS_JOB_DATA_DIR": str(root / ".run" / "jobs")}   # a default: `.env` or the environment wins
    gateway_env = {**jobs, **base, **profile, "HPS_GATEWAY_HOST": HOST,
                   "HPS_GATEWAY_PORT": str(p["HPS_GATEWAY_PORT"]),
                   "HPS_TRITON_URL": f"{HOST}:{p['HPS_TRITON_GRPC_PORT']}"}
    gateway = Tier("gateway", [sys.executable, "-m", "gateway"], env=gateway_env,
                   ready_url=f"{gateway_url}/health/ready", cwd=str(root))
    return [vlm, triton, gateway]
