"""The GPU entrypoint with stub `nvidia-smi` and `vllm` on PATH: refusals, and the exact `vllm serve` argv."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

VLM_DIR = Path(__file__).resolve().parents[2] / "vlm_server"
ENTRYPOINT = VLM_DIR / "entrypoint.sh"
TEMPLATES = VLM_DIR / "chat_templates"


def stub(directory: Path, name: str, script: str) -> None:
    path = directory / name
    path.write_text("#!/usr/bin/env bash\n" + script)
    path.chmod(0o755)


def run(tmp_path: Path, caps: str | None, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the entrypoint; `caps` is what nvidia-smi prints (None: no nvidia-smi at all)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub(bin_dir, "vllm", 'printf "%s\\n" "$@"\n')
    if caps is not None:
        stub(
            bin_dir,
            "nvidia-smi",
            f'[[ "$*" == "--query-gpu=compute_cap --format=csv,noheader" ]] || exit 9\n{caps}\n',
        )
    base = {"PATH": f"{bin_dir}:/usr/bin:/bin", "VLM_MODELS_DIR": str(tmp_path / "models")}
    return subprocess.run(
        ["bash", str(ENTRYPOINT)], env=base | env, capture_output=True, text=True, timeout=30, check=False
    )


def argv(pipeline_model: str, served: str, template: str, *tail: str) -> list[str]:
    return [
        "serve", pipeline_model,
        "--served-model-name", served,
        "--chat-template", str(TEMPLATES / template),
        "--trust-remote-code",
        "--max-num-batched-tokens", "16384",
        "--no-enable-prefix-caching",
        "--mm-processor-cache-gb", "0",
        *tail,
    ]  # fmt: skip


DEFAULT_TAIL = (
    "--gpu-memory-utilization", "0.5", "--max-model-len", "16384", "--max-num-seqs", "256",
    "--host", "0.0.0.0", "--port", "8080",
)  # fmt: skip


def test_the_script_parses() -> None:
    subprocess.run(["bash", "-n", str(ENTRYPOINT)], check=True)
    assert os.access(ENTRYPOINT, os.X_OK)


@pytest.mark.parametrize(
    ("caps", "says"),
    [
        (None, "no NVIDIA GPU visible: nvidia-smi is not available"),
        (
            'echo "No devices were found"; exit 6',
            "no NVIDIA GPU visible: nvidia-smi says 'No devices were found'",
        ),
        ("echo 7.5", "GPU compute capability 7.5 is not supported"),
        ("echo 12.0", "GPU compute capability 12.0 is not supported"),
        ("printf '8.0\\n7.0\\n'", "GPU compute capability 7.0 is not supported"),
        ("echo '[N/A]'", "cannot read the GPU compute capability"),
    ],
)
def test_refuses_without_a_supported_gpu(tmp_path: Path, caps: str | None, says: str) -> None:
    result = run(tmp_path, caps)
    assert result.returncode == 1
    assert result.stdout == ""  # vllm never ran
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("vlm_server: ")
    assert says in result.stderr


@pytest.mark.parametrize("cap", ["8.0", "8.9", "9.0", "10.0", "11.9"])
def test_serves_the_default_release_from_hugging_face(tmp_path: Path, cap: str) -> None:
    result = run(tmp_path, f"echo {cap}")
    assert result.returncode == 0, result.stderr
    expected = argv(
        "PaddlePaddle/PaddleOCR-VL-1.6", "PaddleOCR-VL-1.6-0.9B", "paddleocr_vl_1.5.jinja", *DEFAULT_TAIL
    )
    assert result.stdout.splitlines() == expected


@pytest.mark.parametrize(
    ("pipeline", "served", "template"),
    [
        ("PaddleOCR-VL", "PaddleOCR-VL-0.9B", "paddleocr_vl.jinja"),
        ("PaddleOCR-VL-1.5", "PaddleOCR-VL-1.5-0.9B", "paddleocr_vl_1.5.jinja"),
        ("PaddleOCR-VL-1.6", "PaddleOCR-VL-1.6-0.9B", "paddleocr_vl_1.5.jinja"),
    ],
)
def test_mounted_weights_and_names_follow_the_pipeline(
    tmp_path: Path, pipeline: str, served: str, template: str
) -> None:
    weights = tmp_path / "models" / pipeline
    weights.mkdir(parents=True)
    (weights / "config.json").write_text("{}")
    result = run(tmp_path, "echo 9.0", HPS_PIPELINE_NAME=pipeline)
    assert result.stdout.splitlines() == argv(str(weights), served, template, *DEFAULT_TAIL)
    other = "PaddleOCR-VL-1.6" if pipeline != "PaddleOCR-VL-1.6" else "PaddleOCR-VL"
    assert (
        run(tmp_path, "echo 9.0", HPS_PIPELINE_NAME=other).stdout.splitlines()[1] == f"PaddlePaddle/{other}"
    )


def test_environment_overrides(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        "echo 8.6",
        HPS_PIPELINE_NAME="PaddleOCR-VL",
        HPS_VLM_MODEL_NAME="ocr-vl",
        VLM_GPU_MEMORY_UTILIZATION="0.8",
        VLM_MAX_MODEL_LEN="8192",
        VLM_MAX_NUM_SEQS="64",
        VLM_PORT="8118",
        VLM_EXTRA_ARGS="--enforce-eager  --api-server-count 2",
    )
    tail = ("--gpu-memory-utilization", "0.8", "--max-model-len", "8192", "--max-num-seqs", "64",
            "--host", "0.0.0.0", "--port", "8118", "--enforce-eager", "--api-server-count", "2")  # fmt: skip
    assert result.stdout.splitlines() == argv(
        "PaddlePaddle/PaddleOCR-VL", "ocr-vl", "paddleocr_vl.jinja", *tail
    )


def test_an_unknown_pipeline_is_refused(tmp_path: Path) -> None:
    result = run(tmp_path, "echo 9.0", HPS_PIPELINE_NAME="PaddleOCR-VL-2")
    assert result.returncode == 1 and result.stdout == ""
    assert "unknown HPS_PIPELINE_NAME 'PaddleOCR-VL-2'" in result.stderr


@pytest.mark.parametrize(
    ("template", "reply"), [("paddleocr_vl.jinja", "Assistant: "), ("paddleocr_vl_1.5.jinja", "Assistant:\n")]
)
def test_chat_templates_render_the_paddlex_prompt(template: str, reply: str) -> None:
    """Rendered as vLLM does (HF's sandboxed Jinja), with the parts vLLM hands templates for image_url."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    render = env.from_string((TEMPLATES / template).read_text()).render
    user = {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Table Recognition:"}]}
    image = "<|IMAGE_START|><|IMAGE_PLACEHOLDER|><|IMAGE_END|>"
    prompt = f"<|begin_of_sentence|>User: {image}Table Recognition:\n"
    assert render(messages=[user], add_generation_prompt=True) == prompt + reply
    answer = {"role": "assistant", "content": [{"type": "text", "text": "<fcel>a<nl>"}]}
    assert render(messages=[user, answer], add_generation_prompt=False) == prompt + reply + "<fcel>a<nl></s>"
