"""The one way to start Triton Inference Server from this repository.

The `nvidia-pytriton` wheel ships a real `tritonserver` (2.51) with the Python backend and one backend stub
per CPython version. Those files only work when laid out the way the server expects, with a loader path that
finds the wheel's bundled libraries and the interpreter's `libpython`, and with the interpreter's `bin` first
on PATH (the stub ignores PYTHONPATH and finds the virtual environment through `python3` on PATH). This module
does that once, for the local stack, the gateway tests and the Triton-model and end-to-end tests alike.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WORK_DIR = REPO_ROOT / ".run" / "triton"

MIB = 1024 * 1024
# The Python backend gives every model instance a shared-memory region of this size and grows it in steps of
# the second figure when a request does not fit. 16 MiB fits a typical document request without growing and
# stays well inside a container's default 64 MiB /dev/shm; a 70 MB upload grows it a few times.
SHM_DEFAULT_BYTES = 16 * MIB
SHM_GROWTH_BYTES = 16 * MIB

# The Python backend's shared-memory regions are named after the server that made them (its PID and start
# time), so that a start tells a crashed server's leftovers from a live server's regions: only the former go.
SHM_DIR = Path("/dev/shm")
SHM_PREFIX = "paddleocr_vl_"
_SHM_NAME = re.compile(rf"^{SHM_PREFIX}(\d+)_(\d+)_")
# The server is started through `sh -c 'exec ...'` so that it knows its own PID before it starts.
_NAMED_BY_ITSELF = ('exec "$0" "$@" "--backend-config=python,shm-region-prefix-name='
                    f'{SHM_PREFIX}$$_$(cut -d" " -f22 /proc/$$/stat)_"')

# Environment the caller may hand to the server and its model stubs; everything else is left behind.
PASSTHROUGH_PREFIXES = ("HPS_", "OMP_", "MALLOC_")
PASSTHROUGH_NAMES = ("CUDA_VISIBLE_DEVICES",)
# glibc gives each thread that allocates its own heap (up to 8 per core), which keep what they once held: the
# engine's executor threads grew Triton by 15% over a 30-minute soak. Two heaps kept it to 4%. A default,
# which the caller's own MALLOC_ARENA_MAX replaces; the images set the same.
ALLOCATOR = {"MALLOC_ARENA_MAX": "2"}

_BACKEND_FILES = ("libtriton_python.so", "triton_python_backend_utils.py")
_STUB = "triton_python_backend_stub"


def _wheel_dir() -> Path:
    """`pytriton/tritonserver` of the installed wheel, found without importing pytriton (which is heavy)."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("nvidia-pytriton is not installed: `pip install -e '.[triton]'`")
    return Path(next(iter(spec.submodule_search_locations))) / "tritonserver"


def server_binary() -> Path:
    return _wheel_dir() / "bin" / "tritonserver"


def _copy_if_changed(src: Path, dst: Path) -> None:
    """Copy atomically, so that several test sessions preparing the same cache never see half a file."""
    if dst.exists():
        s, d = src.stat(), dst.stat()
        if s.st_size == d.st_size and int(s.st_mtime) == int(d.st_mtime):
            return
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.")
    os.close(fd)
    try:
        shutil.copy2(src, tmp)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def prepare_backend_dir(work_dir: Path) -> Path:
    """A backend directory with the Python backend and the stub for this interpreter's Python version."""
    wheel = _wheel_dir()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = wheel / "python_backend_stubs" / version / _STUB
    if not stub.exists():
        raise RuntimeError(f"the pytriton wheel has no Python backend stub for Python {version}")
    backend_dir = work_dir / "backends"
    python_dir = backend_dir / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    for name in _BACKEND_FILES:
        _copy_if_changed(wheel / "backends" / "python" / name, python_dir / name)
    _copy_if_changed(stub, python_dir / _STUB)
    return backend_dir


def server_env(extra: Mapping[str, str] = {}) -> dict[str, str]:
    """A clean environment: what the server and its stubs need, the caller's HPS_*/OMP_* values, `extra`."""
    wheel_libs = _wheel_dir().parent.parent / "nvidia_pytriton.libs"
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    env = {
        # Not resolved: for a virtual environment, `bin` is the venv's, which is how the stub finds it.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
        "LD_LIBRARY_PATH": os.pathsep.join(p for p in (str(wheel_libs), libdir) if p),
        "HOME": os.environ.get("HOME", str(DEFAULT_WORK_DIR)),
        **ALLOCATOR,
    }
    for key, value in os.environ.items():
        if key.startswith(PASSTHROUGH_PREFIXES) or key in PASSTHROUGH_NAMES:
            env[key] = value
    env.update(extra)
    return env


def triton_command(
    model_repo: Path,
    *,
    host: str = "127.0.0.1",
    http_port: int = 8000,
    grpc_port: int = 8001,
    metrics_port: int = 8002,
    work_dir: Path | None = None,
    extra_args: Sequence[str] = (),
) -> tuple[list[str], dict[str, str]]:
    """The argv and environment that start `tritonserver` on `model_repo` (prepares the backend directory)."""
    backend_dir = prepare_backend_dir(Path(work_dir) if work_dir else DEFAULT_WORK_DIR)
    remove_shm_leftovers()
    argv = [
        "/bin/sh", "-c", _NAMED_BY_ITSELF,
        str(server_binary()),
        f"--model-repository={Path(model_repo).resolve()}",
        f"--backend-directory={backend_dir.resolve()}",
        f"--http-address={host}",
        f"--http-port={http_port}",
        f"--grpc-address={host}",
        f"--grpc-port={grpc_port}",
        f"--metrics-address={host}",
        f"--metrics-port={metrics_port}",
        "--exit-on-error=true",
        "--strict-readiness=true",
        "--pinned-memory-pool-byte-size=0",
        "--allow-gpu-metrics=false",
        # Configs must be complete: no second stub launch per model to auto-complete them. (2.51 marks
        # `--strict-model-config` deprecated in favour of this flag, so that one is not passed.)
        "--disable-auto-complete-config",
        f"--backend-config=python,shm-default-byte-size={SHM_DEFAULT_BYTES}",
        f"--backend-config=python,shm-growth-byte-size={SHM_GROWTH_BYTES}",
        "--log-verbose=0",
        *extra_args,
    ]
    return argv, server_env()


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def remove_shm_leftovers(shm_dir: Path = SHM_DIR) -> list[Path]:
    """Remove the shared-memory regions of servers that are gone (a PID now dead, or reused by another
    process); regions of other programs, and of live servers, stay. The ones removed."""
    gone = []
    for region in shm_dir.glob(f"{SHM_PREFIX}*"):
        match = _SHM_NAME.match(region.name)
        if match and _start_time(int(match.group(1))) != match.group(2):
            region.unlink(missing_ok=True)
            gone.append(region)
    return gone


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (for tests; another process may still take it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return "(no log)"


class TritonProcess:
    """A running `tritonserver` in its own process group (its model stubs go down with it)."""

    def __init__(self, proc: subprocess.Popen[bytes], *, host: str, http_port: int, grpc_port: int,
                 metrics_port: int, log_path: Path) -> None:
        self.proc = proc
        self.host = host
        self.http_port, self.grpc_port, self.metrics_port = http_port, grpc_port, metrics_port
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url_grpc(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def url_http(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def url_metrics(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"

    def is_running(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, limit: int = 4000) -> str:
        return _tail(self.log_path, limit)

    def is_ready(self, timeout: float = 1.0) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url_http}/v2/health/ready", timeout=timeout) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout: float) -> None:
        """Poll readiness; raise with the log tail if the server exits or is not ready in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.is_running():
                raise RuntimeError(
                    f"tritonserver exited with code {self.proc.returncode} before it was ready; "
                    f"log tail:\n{self.log_tail()}")
            if self.is_ready():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"tritonserver was not ready within {timeout:.0f} s; log tail:\n{self.log_tail()}")

    def _signal_group(self, sig: signal.Signals) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM to the group, SIGKILL what is left after `timeout`; returns the server's exit code."""
        if self.is_running():
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.proc.wait()
        # Stubs that outlive the server (they poll for its death) are ours too.
        self._signal_group(signal.SIGKILL)
        return self.proc.returncode

    def __enter__(self) -> TritonProcess:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def start_triton(
    model_repo: Path,
    *,
    env_overrides: Mapping[str, str] = {},
    log_path: Path | None = None,
    ready_timeout: float = 60,
    host: str = "127.0.0.1",
    http_port: int | None = None,
    grpc_port: int | None = None,
    metrics_port: int | None = None,
    work_dir: Path | None = None,
    extra_args: Sequence[str] = (),
) -> TritonProcess:
    """Start `tritonserver` and return once `/v2/health/ready` answers 200.

    Ports left as None are picked free (tests); the local stack passes the fixed ones. The log goes to
    `log_path` (default: a file under the work directory named after the gRPC port).
    """
    http_port = http_port or free_port(host)
    grpc_port = grpc_port or free_port(host)
    metrics_port = metrics_port or free_port(host)
    work = Path(work_dir) if work_dir else DEFAULT_WORK_DIR
    argv, env = triton_command(model_repo, host=host, http_port=http_port, grpc_port=grpc_port,
                               metrics_port=metrics_port, work_dir=work, extra_args=extra_args)
    env.update(env_overrides)
    log_path = Path(log_path) if log_path else work / "logs" / f"triton-{grpc_port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    triton = TritonProcess(proc, host=host, http_port=http_port, grpc_port=grpc_port,
                           metrics_port=metrics_port, log_path=log_path)
    try:
        triton.wait_ready(ready_timeout)
    except BaseException:
        triton.stop(timeout=5)
        raise
    return triton
