"""One committed config per model; the GPU variant is written from it, never kept by hand."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2] / "triton_repo"


def render(tmp_path: Path, *args: str) -> Path:
    subprocess.run([sys.executable, str(REPO / "configure.py"), "--out", str(tmp_path), *args], check=True,
                   capture_output=True)
    return tmp_path


def test_the_committed_configs_are_the_cpu_variant_with_the_wire_tensors():
    for model in ("layout-parsing", "restructure-pages"):
        config = (REPO / model / "config.pbtxt").read_text()
        assert f'name: "{model}"' in config and 'backend: "python"' in config
        assert 'name: "input"' in config and 'name: "output"' in config and "TYPE_STRING" in config
        assert 'name: "status"' in config and "TYPE_INT32" in config
        assert "kind: KIND_CPU" in config and "kind: KIND_GPU" not in config
    assert "max_batch_size: 8" in (REPO / "layout-parsing" / "config.pbtxt").read_text()


def test_the_gpu_variant_puts_layout_parsing_on_the_chosen_gpu(tmp_path):
    out = render(tmp_path, "--profile", "gpu", "--device-id", "2", "--instances", "3",
                 "--queue-delay-us", "700")
    config = (out / "layout-parsing" / "config.pbtxt").read_text()
    assert "kind: KIND_GPU" in config and "gpus: [ 2 ]" in config and "count: 3" in config
    assert "max_queue_delay_microseconds: 700" in config
    assert "KIND_CPU" in (out / "restructure-pages" / "config.pbtxt").read_text()
    assert (out / "layout-parsing" / "1" / "model.py").is_file()
    original = (REPO / "layout-parsing" / "config.pbtxt").read_text()
    assert config.replace("kind: KIND_GPU", "kind: KIND_CPU").replace("\n    gpus: [ 2 ]", "").replace(
        "count: 3", "count: 1").replace("700", "5000") == original


def test_the_cpu_variant_changes_nothing_but_what_is_asked(tmp_path):
    out = render(tmp_path, "--profile", "cpu")
    assert (out / "layout-parsing" / "config.pbtxt").read_text() == (
        REPO / "layout-parsing" / "config.pbtxt").read_text()
