"""What the gateway image relies on: its requirements match the project's pins, and the gateway imports only
those packages and the repository files its Dockerfile copies."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

from .conftest import REPO

GATEWAY = REPO / "gateway"
# the packages beside it that its Dockerfile copies
SHARED = ("contract", "safefetch", "jobs", "imagelinks", "webui")


def requirements() -> list[str]:
    lines = (GATEWAY / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_requirements_txt_is_the_gateway_extra() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert requirements() == project["optional-dependencies"]["gateway"]


def closure(names: list[str]) -> set[str]:
    """The distributions `names` pull in (with their extras), normalised."""
    seen: set[str] = set()
    todo = [Requirement(n) for n in names]
    while todo:
        req = todo.pop()
        key = re.sub(r"[-_.]+", "-", req.name).lower()
        if key in seen and not req.extras:
            continue
        seen.add(key)
        extras = [*req.extras, ""]
        for dep in metadata.requires(req.name) or []:
            sub = Requirement(dep)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in extras):
                todo.append(sub)
    return seen


PROBE = """
import json, sys
for name in {blocked!r}:
    sys.modules[name] = None  # as if not installed: importing it raises ImportError
import gateway.app, gateway.__main__
gateway.app.create_app().openapi()
files = {{getattr(m, "__file__", None) or "" for m in list(sys.modules.values())}}
print(json.dumps({{"modules": sorted({{m.split(".")[0] for m in sys.modules}}), "files": sorted(files)}}))
"""


def import_gateway(tmp_path: Path, blocked: list[str]) -> dict[str, list[str]]:
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "UVICORN_WORKERS": "1"}
    done = subprocess.run([sys.executable, "-c", PROBE.format(blocked=blocked)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_the_gateway_needs_only_its_requirements_and_the_copied_files(tmp_path: Path) -> None:
    allowed = closure(requirements())
    owners = metadata.packages_distributions()
    foreign = []
    for module in import_gateway(tmp_path, [])["modules"]:
        if module in ("gateway", *SHARED) or module.startswith("_"):
            continue
        dists = {re.sub(r"[-_.]+", "-", d).lower() for d in owners.get(module, [])}
        if dists and not dists & allowed:
            foreign.append(module)
    # Whatever else got imported was optional: without it (as in the image) the gateway still builds.
    loaded = import_gateway(tmp_path, foreign)
    env = Path(sys.prefix).resolve()
    files = [Path(f).resolve() for f in loaded["files"] if f]
    ours = {f.relative_to(REPO).as_posix() for f in files
            if f.is_relative_to(REPO) and not f.is_relative_to(env)}
    copied = {p.relative_to(REPO).as_posix() for package in SHARED for p in (REPO / package).rglob("*.py")}
    assert ours - {f"gateway/{p.name}" for p in GATEWAY.glob("*.py")} <= copied
    dockerfile = (GATEWAY / "Dockerfile").read_text()
    assert all(f"COPY {package}/ {package}/" in dockerfile for package in SHARED)
    assert "COPY gateway/ gateway/" in dockerfile and 'CMD ["python", "-m", "gateway"]' in dockerfile
