"""The contract package is shared by every tier's image, so it must import nothing but pydantic."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROBE = """
import json, sys
before = set(sys.modules)
import contract, contract.envelope, contract.models, contract.names, contract.text, contract.urls
print(json.dumps(sorted({m.split(".")[0] for m in set(sys.modules) - before})))
"""
ALLOWED = {"contract", "pydantic", "pydantic_core", "typing_extensions", "annotated_types",
           "typing_inspection"}


def test_contract_imports_only_pydantic_and_the_standard_library() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    outside = {m for m in loaded if m not in sys.stdlib_module_names and not m.startswith("_")}
    assert outside <= ALLOWED, f"contract imports {sorted(outside - ALLOWED)}"
    assert "pydantic" in outside
