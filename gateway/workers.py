"""What the workers of one gateway share, prepared in one place before any of them starts.

`python -m gateway` with several workers makes a run directory and puts it, and the Prometheus multiprocess
directory inside it, into the environment the workers inherit (`prepare`). The workers keep their shared
state there: the admission table (`gateway.shared_admission`), the rate-limit counters and the metrics files.
The directory's name carries the launcher's PID, so that a later start removes what a crashed gateway left
behind, and only that: another gateway's directory, whose launcher lives, is never touched.

A process that multiprocessing did not start (`python -m gateway` with one worker, or the app served by
plain uvicorn) is the only worker, whatever `UVICORN_WORKERS` says, and keeps its state in memory.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import shutil
import tempfile
from pathlib import Path

from gateway.settings import Settings, SettingsError

METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"
RUN_DIR_ENV = "HPS_GATEWAY_RUN_DIR"
PREFIX = "paddleocr-vl-gateway-"
_OURS = re.compile(rf"^{PREFIX}(\d+)-")


def worker_count(settings: Settings) -> int:
    """How many workers share the limits: the setting, if uvicorn's supervisor started this process."""
    return settings.workers if multiprocessing.parent_process() is not None else 1


def shared_dir(settings: Settings) -> Path | None:
    """The run directory of this worker's gateway; None for a gateway of one process."""
    if worker_count(settings) == 1:
        return None
    if not settings.run_dir:
        raise SettingsError("several workers share their limits through the directory `python -m gateway` "
                            f"prepares: start the gateway with `python -m gateway` (UVICORN_WORKERS="
                            f"{settings.workers}), or serve one process per container")
    return Path(settings.run_dir)


def prepare(settings: Settings) -> Path | None:
    """For several workers: a fresh run directory in the environment they will inherit (and the metrics
    directory in it), after removing the directories of gateways that died without cleaning up."""
    if settings.workers == 1:
        return None
    base = Path(tempfile.gettempdir())
    remove_leftovers(base)
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=base))
    (path / "metrics").mkdir()
    os.environ[RUN_DIR_ENV] = str(path)
    os.environ[METRICS_ENV] = str(path / "metrics")
    return path


def remove(path: Path | None) -> None:
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


def remove_leftovers(base: Path) -> list[Path]:
    """Remove run directories whose launcher is dead; the ones removed."""
    gone = []
    for entry in base.glob(f"{PREFIX}*"):
        match = _OURS.match(entry.name)
        if match and entry.is_dir() and not _running(int(match.group(1))):
            shutil.rmtree(entry, ignore_errors=True)
            gone.append(entry)
    return gone


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # alive, but someone else's
        return True
    return True
