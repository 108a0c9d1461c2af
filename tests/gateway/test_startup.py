"""Settings (our names, upstream aliases, one-line errors), running without Triton, and serving the app
factory with plain uvicorn."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway import workers
from gateway.settings import Settings, SettingsError
from localstack.triton import free_port

from .conftest import REPO, layout_body, new_id


def settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for key in list(os.environ):
        if key.startswith(("HPS_", "UVICORN_", "GPU_")):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(monkeypatch)
    assert (s.max_concurrent_requests, s.max_concurrent_non_inference_requests) == (16, 64)
    assert (s.inference_timeout, s.health_check_timeout, s.log_level, s.workers) == (600, 5, "INFO", 4)
    assert (s.host, s.port, s.triton_url, s.loop) == ("127.0.0.1", 8080, "127.0.0.1:8001", "auto")
    assert s.max_body_size >= 4 * 50 * 1024 * 1024 // 3  # a 50 MiB document in Base64
    assert s.rate_limit == "" and not s.api_keys and s.filter_health_access_log


def test_upstream_names_are_aliases_and_ours_win(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(monkeypatch, HPS_MAX_CONCURRENT_INFERENCE_REQUESTS="8", HPS_UVICORN_WORKERS="2",
                 HPS_MAX_CONCURRENT_NON_INFERENCE_REQUESTS="9")
    assert (s.max_concurrent_requests, s.workers, s.max_concurrent_non_inference_requests) == (8, 2, 9)
    s = settings(monkeypatch, HPS_MAX_CONCURRENT_REQUESTS="5", HPS_MAX_CONCURRENT_INFERENCE_REQUESTS="8",
                 UVICORN_WORKERS="1", HPS_UVICORN_WORKERS="2")
    assert (s.max_concurrent_requests, s.workers) == (5, 1)


def test_lists_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(monkeypatch, HPS_VLM_URL="http://a:1/v1, http://b:2/", HPS_API_KEYS="k1, k2",
                 HPS_TRUSTED_PROXIES="10.0.0.0/8,::1", HPS_CORS_ORIGINS="https://x.example")
    assert s.vlm_urls == ("http://a:1", "http://b:2")
    assert s.api_keys == {"k1", "k2"} and "k1" not in repr(s)
    assert [str(n) for n in s.trusted_proxies] == ["10.0.0.0/8", "::1/128"]
    assert s.cors_origins == ("https://x.example",)


def test_api_keys_come_from_a_mounted_file_too(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    keys = tmp_path / "api-keys"
    keys.write_text("# one a line, or several on a line\nk2\n\nk3, k4  # the ops team\n")
    s = settings(monkeypatch, HPS_API_KEYS="k1", HPS_API_KEYS_FILE=str(keys))
    assert s.api_keys == {"k1", "k2", "k3", "k4"} and "k2" not in repr(s)


@pytest.mark.parametrize("content", [None, "", "# only a comment\n , \n"])
def test_a_key_file_that_is_missing_or_empty_stops_start_up(tmp_path: Any, content: str | None) -> None:
    """A Secret mounted empty, or not at all, must not turn authentication off."""
    keys = tmp_path / "api-keys"
    if content is not None:
        keys.write_text(content)
    done = run_gateway(tmp_path, HPS_API_KEYS_FILE=str(keys))
    assert done.returncode == 3
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"gateway: invalid setting HPS_API_KEYS_FILE='{keys}'")
    assert ("holds no key" if content is not None else "cannot be read") in lines[0]


def test_several_triton_addresses_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(monkeypatch, HPS_TRITON_URL=" triton-0.triton:8001, triton-1.triton:8001 ,")
    assert s.triton_urls == ("triton-0.triton:8001", "triton-1.triton:8001")


def run_gateway(tmp_path: Any, timeout: float = 20, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HPS_", "UVICORN_", "GPU_"))}
    return subprocess.run([sys.executable, "-m", "gateway"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=timeout, env=clean | {"PYTHONPATH": str(REPO), **env})


@pytest.mark.parametrize("env,named", [
    ({"HPS_MAX_CONCURRENT_INFERENCE_REQUESTS": "many"}, "HPS_MAX_CONCURRENT_INFERENCE_REQUESTS='many'"),
    ({"HPS_RATE_LIMIT": "lots"}, "HPS_RATE_LIMIT='lots'"),
    ({"HPS_INFERENCE_TIMEOUT": "-1"}, "HPS_INFERENCE_TIMEOUT='-1'"),
    ({"HPS_GATEWAY_LOOP": "trio"}, "HPS_GATEWAY_LOOP='trio'"),
    ({"HPS_TRITON_URL": "triton:8001,http://triton"}, "HPS_TRITON_URL='triton:8001,http://triton'"),
])
def test_a_bad_value_stops_start_up_with_one_line(tmp_path: Any, env: dict[str, str], named: str) -> None:
    done = run_gateway(tmp_path, **env)
    assert done.returncode == 3
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("gateway: invalid setting") and named in lines[0]


def test_without_triton_requests_are_503_and_readiness_names_it(start_gateway: Any, vlm: Any) -> None:
    port = free_port()
    gateway = start_gateway(HPS_TRITON_URL=f"127.0.0.1:{port}", HPS_VLM_URL=vlm.url,
                            HPS_HEALTH_CHECK_TIMEOUT="1")
    response = httpx.post(f"{gateway.url}/layout-parsing", json=layout_body(new_id()), timeout=10)
    assert response.status_code == 503
    assert response.json()["errorMsg"].startswith("Inference server unavailable")
    ready = httpx.get(f"{gateway.url}/health/ready", timeout=10)
    assert ready.status_code == 503
    assert "Triton server" in ready.json()["errorMsg"] and "layout-parsing" in ready.json()["errorMsg"]
    assert vlm.url not in ready.json()["errorMsg"]


def test_plain_uvicorn_serves_the_factory_as_one_process(tmp_path: Any, triton: Any) -> None:
    """`uvicorn gateway.app:create_app --factory` from the repository root: one process, limits in memory."""
    port = free_port()
    skip = ("HPS_", "UVICORN_", "GPU_", "PYTHONPATH", "PROMETHEUS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
    env |= {"HPS_TRITON_URL": triton.url_grpc}
    uvicorn = os.path.join(os.path.dirname(sys.executable), "uvicorn")
    argv = [uvicorn, "gateway.app:create_app", "--factory", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                response = httpx.post(f"http://127.0.0.1:{port}/layout-parsing", json=layout_body(new_id()))
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert response.status_code == 200 and response.json()["errorCode"] == 0
    finally:
        proc.terminate()
        proc.wait(20)


def test_workers_started_without_python_m_gateway_are_told_how(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several workers share their limits through the directory `python -m gateway` prepares; a worker of a
    plain `uvicorn --workers N` has none, and says so instead of counting alone."""
    monkeypatch.setattr(workers.multiprocessing, "parent_process", lambda: object())
    with pytest.raises(SettingsError, match="start the gateway with `python -m gateway`"):
        workers.shared_dir(settings(monkeypatch, UVICORN_WORKERS="2"))
    prepared = settings(monkeypatch, UVICORN_WORKERS="2", HPS_GATEWAY_RUN_DIR="/x")
    assert workers.shared_dir(prepared) == Path("/x")
