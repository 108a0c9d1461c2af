"""The local-stack supervisor on tiny fake tiers: order, readiness, restarts, logs and a clean stop."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from localstack import __main__ as stack
from localstack import tiers
from localstack.supervisor import Supervisor, Tier, is_ready

# A fake tier: serves GET /health on its port. Options: --delay (seconds before it listens), --require URL
# (exit 3 unless that answers 200 at start), --grandchild FILE (start a `sleep` in its group, write its pid),
# --ignore-term (survive SIGTERM), --exit-now CODE.
FAKE_TIER = textwrap.dedent("""
    import argparse, http.server, os, signal, subprocess, sys, time, urllib.request
    ap = argparse.ArgumentParser()
    ap.add_argument("name"); ap.add_argument("port", type=int)
    ap.add_argument("--delay", type=float, default=0); ap.add_argument("--require")
    ap.add_argument("--grandchild"); ap.add_argument("--ignore-term", action="store_true")
    ap.add_argument("--exit-now", type=int)
    a = ap.parse_args()
    print(f"hello from {a.name}", flush=True)
    if a.exit_now is not None:
        print("bad config", file=sys.stderr, flush=True); sys.exit(a.exit_now)
    if a.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if a.require:
        try:
            urllib.request.urlopen(a.require, timeout=1)
        except Exception as exc:
            print(f"dependency not ready: {exc}", flush=True); sys.exit(3)
    if a.grandchild:
        kid = subprocess.Popen(["sleep", "300"])
        open(a.grandchild, "w").write(str(kid.pid))
    time.sleep(a.delay)
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404); self.end_headers()
        def log_message(self, *args): pass
    http.server.HTTPServer(("127.0.0.1", a.port), H).serve_forever()
""")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def fake(tmp_path: Path):
    script = tmp_path / "fake_tier.py"
    script.write_text(FAKE_TIER)

    def make(name: str, *args: str, port: int | None = None) -> Tier:
        port = port or free_port()
        return Tier(name, [sys.executable, str(script), name, str(port), *args], env=dict(os.environ),
                    ready_url=f"http://127.0.0.1:{port}/health")
    return make


def alive(pid: int) -> bool:
    """Running, and not a zombie waiting for a parent that is not us."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_starts_each_tier_once_the_one_before_is_ready_and_prefixes_logs(fake):
    first = fake("first", "--delay", "0.8")
    # `second` exits at once unless `first` already answers: it only starts if the supervisor waited.
    second = fake("second", "--require", first.ready_url)
    out = io.StringIO()
    sup = Supervisor([first, second], out=out, poll=0.05)
    try:
        assert sup.start() is True
        assert is_ready(first.ready_url) and is_ready(second.ready_url)
    finally:
        sup.stop()
    log = out.getvalue()
    assert "first      | hello from first" in log
    assert "second     | hello from second" in log
    assert log.index("first is ready") < log.index("starting second")
    assert not is_ready(first.ready_url) and not is_ready(second.ready_url)


def test_restarts_a_tier_that_dies_with_growing_backoff(fake):
    tier = fake("worker")
    out = io.StringIO()
    sup = Supervisor([tier], out=out, poll=0.05, backoff=0.2)
    watcher = threading.Thread(target=sup.watch)

    def ready_again() -> int:
        return out.getvalue().count("worker is ready again")
    try:
        sup.start()
        watcher.start()
        for round_ in (1, 2):
            pid = sup.pid("worker")
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            assert wait_for(lambda r=round_: ready_again() == r), out.getvalue()
            assert sup.restarts("worker") == round_ and is_ready(tier.ready_url)
            assert sup.pid("worker") != pid
    finally:
        sup.request_stop()
        watcher.join(timeout=5)
        sup.stop()
    log = out.getvalue()
    assert "worker exited with signal SIGKILL; restarting in 0.2s" in log
    assert "worker exited with signal SIGKILL; restarting in 0.4s" in log


def test_a_tier_that_dies_while_starting_fails_the_start_and_nothing_is_left(fake):
    ok = fake("ok")
    broken = fake("broken", "--exit-now", "7")
    out = io.StringIO()
    sup = Supervisor([ok, broken], out=out, poll=0.05)
    assert sup.run() == 1
    log = out.getvalue()
    assert "broken     | bad config" in log
    assert "error: broken exited with code 7 before it was ready" in log
    assert not is_ready(ok.ready_url)


def test_sigterm_stops_every_child_and_grandchild_then_kills_the_stubborn(fake, tmp_path: Path):
    plain = fake("plain", "--grandchild", str(tmp_path / "grandchild.pid"))
    stubborn = fake("stubborn", "--ignore-term")
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(f"""
        import json, os, sys
        from localstack.supervisor import Supervisor, Tier
        tiers = [Tier(**t) for t in json.loads({_tiers_json([plain, stubborn])!r})]
        sup = Supervisor(tiers, grace=1.0, poll=0.05)
        def ready():
            pids = [sup.pid(t.name) for t in tiers]
            open({str(tmp_path / "pids")!r}, "w").write(" ".join(map(str, pids)))
        sys.exit(sup.run(on_ready=ready))
    """))
    proc = subprocess.Popen([sys.executable, str(driver)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        assert wait_for((tmp_path / "pids").exists, timeout=20)
        pids = [int(p) for p in (tmp_path / "pids").read_text().split()]
        pids.append(int((tmp_path / "grandchild.pid").read_text()))
        assert all(alive(p) for p in pids)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "SIGTERM: stopping" in out
    assert "stubborn did not stop within 1s: killing it" in out
    assert wait_for(lambda: not any(alive(p) for p in pids), timeout=5), [p for p in pids if alive(p)]


def _tiers_json(tiers: list[Tier]) -> str:
    import json
    return json.dumps([{"name": t.name, "argv": t.argv, "env": dict(t.env), "ready_url": t.ready_url}
                       for t in tiers])


def test_local_stack_tiers_use_the_cpu_profile_loopback_and_the_port_variables(tmp_path: Path):
    (tmp_path / "triton_repo").mkdir()
    env = {"HPS_GATEWAY_PORT": "18080", "HPS_VLM_PORT": "18118", "HPS_TRITON_HTTP_PORT": "18000",
           "HPS_TRITON_GRPC_PORT": "18001", "HPS_TRITON_METRICS_PORT": "18002", "PATH": os.environ["PATH"],
           "HPS_MAX_PAGES": "7"}
    vlm, triton, gateway = tiers.build_tiers(env, root=tmp_path)

    assert vlm.argv[1:] == ["-m", "vlm_server"]
    assert (vlm.env["HPS_VLM_HOST"], vlm.env["HPS_VLM_PORT"]) == ("127.0.0.1", "18118")
    assert vlm.ready_url == "http://127.0.0.1:18118/health"

    assert f"--model-repository={tmp_path / 'triton_repo'}" in triton.argv
    for flag in ("--http-port=18000", "--grpc-port=18001", "--metrics-port=18002", "--grpc-address=127.0.0.1",
                 "--http-address=127.0.0.1", "--metrics-address=127.0.0.1"):
        assert flag in triton.argv
    assert triton.env["HPS_PROFILE"] == "cpu"
    assert triton.env["HPS_VLM_URL"] == "http://127.0.0.1:18118"
    assert triton.env["HPS_MAX_PAGES"] == "7"  # the engine's settings reach Triton from the given environment
    assert triton.env["HPS_VLM_MAX_CONCURRENCY"] == "16"  # the CPU recogniser's bound, unless set
    assert triton.env["HPS_LAYOUT_BATCH_SIZE"] == "1"  # no newcomer waits behind a batch of pages
    assert triton.ready_url == "http://127.0.0.1:18000/v2/health/ready"

    assert gateway.argv[1:] == ["-m", "gateway"]
    assert (gateway.env["HPS_GATEWAY_HOST"], gateway.env["HPS_GATEWAY_PORT"]) == ("127.0.0.1", "18080")
    assert gateway.env["HPS_TRITON_URL"] == "127.0.0.1:18001"
    assert {t.env["MALLOC_ARENA_MAX"] for t in (vlm, triton, gateway)} == {"2"}   # bounded heaps by default
    mine = tiers.build_tiers({**env, "MALLOC_ARENA_MAX": "4"}, root=tmp_path)
    assert {t.env["MALLOC_ARENA_MAX"] for t in mine} == {"4"}                   # unless the caller says
    assert gateway.env["HPS_VLM_URL"] == "http://127.0.0.1:18118"
    assert gateway.ready_url == "http://127.0.0.1:18080/health/ready"


def test_default_ports_and_a_bad_port_value():
    assert tiers.ports({}) == {"HPS_VLM_PORT": 8118, "HPS_TRITON_HTTP_PORT": 8000,
                               "HPS_TRITON_GRPC_PORT": 8001, "HPS_TRITON_METRICS_PORT": 8002,
                               "HPS_GATEWAY_PORT": 8080}
    with pytest.raises(SystemExit, match="HPS_GATEWAY_PORT='http' is not a port number"):
        tiers.ports({"HPS_GATEWAY_PORT": "http"})


def test_a_busy_port_is_reported_with_the_variable_that_moves_it():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        problems = stack.busy_ports({"HPS_GATEWAY_PORT": port, "HPS_VLM_PORT": free_port()})
    assert problems == [
        f"port {port} is in use: stop what listens there or set HPS_GATEWAY_PORT to another port"]
