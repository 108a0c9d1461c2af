"""The Triton launcher that the local stack and the test suites share: start, readiness, stop, failure."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest

from localstack.triton import free_port, start_triton, triton_command

MODELS = Path(__file__).parent / "triton_models"


def _children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (the model stubs of a server)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def test_command_is_loopback_with_a_clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPS_SOMETHING", "kept")
    monkeypatch.setenv("UNRELATED_SECRET", "dropped")
    argv, env = triton_command(MODELS, http_port=1, grpc_port=2, metrics_port=3, work_dir=tmp_path)
    assert "--grpc-address=127.0.0.1" in argv and "--grpc-port=2" in argv
    assert "--disable-auto-complete-config" in argv and "--strict-readiness=true" in argv
    backend = tmp_path / "backends" / "python"
    assert {p.name for p in backend.iterdir()} >= {"libtriton_python.so", "triton_python_backend_stub"}
    assert os.access(backend / "triton_python_backend_stub", os.X_OK)
    assert env["HPS_SOMETHING"] == "kept" and "UNRELATED_SECRET" not in env
    assert env["MALLOC_ARENA_MAX"] == "2"
    assert "nvidia_pytriton.libs" in env["LD_LIBRARY_PATH"]


def test_starts_ready_and_stops_with_its_stubs(tmp_path: Path) -> None:
    with start_triton(MODELS, log_path=tmp_path / "triton.log", ready_timeout=60) as triton:
        for model in ("layout-parsing", "restructure-pages"):
            with urllib.request.urlopen(f"{triton.url_http}/v2/models/{model}/ready", timeout=5) as resp:
                assert resp.status == 200
        with urllib.request.urlopen(f"{triton.url_http}/v2/models/layout-parsing/config", timeout=5) as resp:
            assert json.load(resp)["max_batch_size"] == 8
        stubs = _children(triton.pid)
        assert len(stubs) == 2  # one stub per model instance
        triton.stop(timeout=15)
    assert not triton.is_running()
    assert all(not Path(f"/proc/{pid}").exists() for pid in stubs)


def test_a_broken_repository_fails_with_the_log_tail(tmp_path: Path) -> None:
    model = tmp_path / "repo" / "broken"
    (model / "1").mkdir(parents=True)
    (model / "config.pbtxt").write_text('name: "broken"\nbackend: "python"\nthis is not protobuf text\n')
    with pytest.raises(RuntimeError, match="exited with code") as info:
        start_triton(tmp_path / "repo", log_path=tmp_path / "triton.log", http_port=free_port())
    assert "broken" in str(info.value)
