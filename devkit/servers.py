"""Real servers for tests: an ASGI app under uvicorn in a background thread, on a free loopback port."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_in_thread(app, *, port: int | None = None, health_path: str = "/health") -> Iterator[str]:
    """Serve `app` until the block ends; yields its base URL once `health_path` answers."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + health_path, timeout=1).status_code < 500:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    else:
        raise RuntimeError(f"server on {url} did not come up")
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def run_schemathesis(base_url: str, report_dir: Path, *, max_examples: int, seed: int,
                     request_timeout: float) -> subprocess.CompletedProcess[str]:
    """Fuzz both POST routes from the gateway's OpenAPI document: no 5xx, and only documented answers."""
    checks = ("not_a_server_error,status_code_conformance,content_type_conformance,"
              "response_headers_conformance,response_schema_conformance")
    return subprocess.run(
        [str(Path(sys.executable).parent / "st"), "run", f"{base_url}/openapi.json", "--checks", checks,
         "--include-path", "/layout-parsing", "--include-path", "/restructure-pages",
         "--phases", "examples,coverage,fuzzing", "--max-examples", str(max_examples), "--seed", str(seed),
         "--workers", "1", "--request-timeout", str(request_timeout), "--warnings", "off",
         "--report-dir", str(report_dir)],
        capture_output=True, text=True, timeout=240, cwd=report_dir)
