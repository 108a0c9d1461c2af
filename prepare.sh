#!/usr/bin/env bash
# Get a GPU machine ready for `docker compose up`: check what the stack needs, create .env, and download the
# weights of the selected PaddleOCR-VL release into ./models so that the first start does not fetch them.
# Optional: without it, the containers fetch missing weights themselves on their first start.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: ./prepare.sh [--check-only | --skip-download | --download-only | --cpu]

Checks this machine for the GPU stack (x86_64, Docker >= 19.03, Docker Compose >= 2.24, NVIDIA GPU with
compute capability 8.0 to below 12.0, driver >= 560 for CUDA 12.6, NVIDIA Container Toolkit), creates .env
from .env.example when there is none, and downloads the weights of the release named by HPS_PIPELINE_NAME
(environment, else .env; default PaddleOCR-VL-1.6), and UVDoc for useDocUnwarping, into ./models. Downloads
resume and are skipped when complete. Set HF_ENDPOINT to use a Hugging Face mirror.

  --check-only     only check; create and download nothing
  --skip-download  check and create .env, download nothing
  --download-only  create .env and download, skip the checks (e.g. to fill ./models for an offline machine)
  --cpu            for the CPU profile: check x86_64, Docker and Compose only, create .env, download nothing
  -h, --help       this text
EOF
}

MIN_DOCKER=19.03
MIN_COMPOSE=2.24.0 # the optional `env_file` entries of compose.yaml need it (older versions reject the file)
MIN_CC=8.0         # vLLM on older GPUs (T4, V100) times out and runs out of memory
MAX_CC=12.0        # exclusive: Blackwell consumer cards (sm_120) need other images
MIN_DRIVER=560     # CUDA 12.6

mode=all
case "${1:-}" in
    "") ;;
    --check-only) mode=check ;;
    --skip-download) mode=nodownload ;;
    --download-only) mode=download ;;
    --cpu) mode=cpu ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        echo "prepare.sh: unknown option '$1'" >&2
        usage >&2
        exit 2
        ;;
esac
if [ $# -gt 1 ]; then
    echo "prepare.sh: one option at most" >&2
    exit 2
fi

cd "$(dirname "${BASH_SOURCE[0]}")"
MODELS_DIR=${HPS_MODELS_DIR:-./models}
failures=0

ok() { printf 'OK    %s\n' "$*"; }
fail() {
    printf 'FAIL  %s\n' "$*"
    failures=$((failures + 1))
}
info() { printf '      %s\n' "$*"; }

# version_ge A B: A >= B, comparing dotted versions.
version_ge() {
    [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n 1)" = "$2" ]
}

trim() {
    local s=$1
    s=${s#"${s%%[![:space:]]*}"}
    printf '%s' "${s%"${s##*[![:space:]]}"}"
}

# setting NAME DEFAULT: the environment wins over .env, as for compose's own variable substitution.
setting() {
    local name=$1 default=$2 value=""
    if [ -n "${!name:-}" ]; then
        printf '%s' "${!name}"
        return
    fi
    if [ -f .env ]; then
        value=$(sed -n "s/^[[:space:]]*\(export[[:space:]]\{1,\}\)\{0,1\}${name}[[:space:]]*=//p" .env | tail -n 1)
        value=$(trim "${value%%[[:space:]]#*}")
        value=${value#[\"\']}
        value=${value%[\"\']}
    fi
    printf '%s' "${value:-$default}"
}

check_arch() {
    local arch
    arch=$(uname -m)
    if [ "$arch" = x86_64 ]; then
        ok "architecture x86_64"
    else
        fail "architecture $arch: the images are built for x86_64 (linux/amd64) only; use an x86_64 host"
    fi
}

check_docker() {
    local server compose
    if ! command -v docker >/dev/null 2>&1; then
        fail "docker not found: install Docker Engine >= $MIN_DOCKER (https://docs.docker.com/engine/install/)"
        return
    fi
    if ! server=$(docker version --format '{{.Server.Version}}' 2>/dev/null) || [ -z "$server" ]; then
        fail "Docker daemon not reachable: start it (sudo systemctl start docker) or add your user to the docker group"
    elif version_ge "$server" "$MIN_DOCKER"; then
        ok "Docker $server (>= $MIN_DOCKER)"
    else
        fail "Docker $server is older than $MIN_DOCKER: upgrade Docker Engine"
    fi
    if ! compose=$(docker compose version --short 2>/dev/null) || [ -z "$compose" ]; then
        fail "Docker Compose v2 not found: install the docker-compose-plugin package (>= $MIN_COMPOSE); Compose v1 (docker-compose) cannot read compose.yaml"
        return
    fi
    compose=${compose#v}
    if version_ge "$compose" "$MIN_COMPOSE"; then
        ok "Docker Compose $compose (>= $MIN_COMPOSE)"
    else
        fail "Docker Compose $compose is older than $MIN_COMPOSE, which rejects compose.yaml (its optional .env entry): upgrade the docker-compose-plugin package"
    fi
}

check_gpu() {
    local wanted rows index name cc driver found=""
    wanted=$(setting GPU_DEVICE_ID 0)
    if ! command -v nvidia-smi >/dev/null 2>&1; then
        fail "nvidia-smi not found: install the NVIDIA driver >= $MIN_DRIVER (no GPU? the CPU stack needs none: make up)"
        return
    fi
    if ! rows=$(nvidia-smi --query-gpu=index,name,compute_cap,driver_version --format=csv,noheader 2>/dev/null) \
        || [ -z "$rows" ]; then
        fail "nvidia-smi found no working GPU: check the driver with 'nvidia-smi' (reboot after installing it)"
        return
    fi
    while IFS=, read -r index name cc driver; do
        if [ "$(trim "$index")" = "$wanted" ]; then
            found=1
            name=$(trim "$name")
            cc=$(trim "$cc")
            driver=$(trim "$driver")
            break
        fi
    done <<<"$rows"
    if [ -z "$found" ]; then
        fail "GPU_DEVICE_ID=$wanted: no such GPU (nvidia-smi -L lists them); set GPU_DEVICE_ID in .env"
        return
    fi
    if ! version_ge "$cc" "$MIN_CC"; then
        fail "GPU $wanted ($name): compute capability $cc is below $MIN_CC; use an Ampere or newer GPU (A10, A100, L4, H100, RTX 30/40)"
    elif version_ge "$cc" "$MAX_CC"; then
        fail "GPU $wanted ($name): compute capability $cc is $MAX_CC or above (Blackwell consumer cards) and not supported by these images"
    else
        ok "GPU $wanted ($name): compute capability $cc"
    fi
    if [ "${driver%%.*}" -ge "$MIN_DRIVER" ] 2>/dev/null; then
        ok "NVIDIA driver $driver (>= $MIN_DRIVER, CUDA 12.6)"
    else
        fail "NVIDIA driver $driver is older than $MIN_DRIVER: install driver >= $MIN_DRIVER (CUDA 12.6)"
    fi
}

check_toolkit() {
    if command -v nvidia-ctk >/dev/null 2>&1 || command -v nvidia-container-cli >/dev/null 2>&1; then
        ok "NVIDIA Container Toolkit"
    else
        fail "NVIDIA Container Toolkit not found: install it, then 'sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker'"
    fi
}

make_env() {
    if [ -f .env ]; then
        ok ".env exists (kept as it is)"
    elif [ -f .env.example ]; then
        cp .env.example .env
        ok "created .env from .env.example (edit it to change the release, GPU or ports)"
    else
        fail ".env.example is missing: restore it from the repository"
    fi
}

# complete DIR: the weights in DIR are whole (an ONNX repository's inference.onnx, else a config, the
# safetensors and every shard; no partial download).
complete() {
    local dir=$1 shard
    case "$dir" in
        *_onnx) [ -f "$dir/inference.onnx" ] || return 1 ;;
        *)
            [ -f "$dir/config.json" ] || return 1
            compgen -G "$dir/*.safetensors" >/dev/null || return 1
            ;;
    esac
    if [ -d "$dir/.cache/huggingface/download" ] \
        && [ -n "$(find "$dir/.cache/huggingface/download" -name '*.incomplete' -print -quit)" ]; then
        return 1
    fi
    if [ -f "$dir/model.safetensors.index.json" ]; then
        for shard in $(grep -o '"[^"]*\.safetensors"' "$dir/model.safetensors.index.json" | tr -d '"' | sort -u); do
            [ -f "$dir/$shard" ] || return 1
        done
    fi
}

# fetch REPO DIR: download a Hugging Face model repository into DIR (resumes; skipped when complete).
fetch() {
    local repo=$1 dir=$2 offline
    offline="offline: copy the files of https://huggingface.co/$repo from a connected machine into $dir"
    if complete "$dir"; then
        ok "$repo is in $dir"
        return
    fi
    mkdir -p "$dir"
    info "downloading $repo into $dir ..."
    local status=0
    if command -v hf >/dev/null 2>&1; then
        hf download "$repo" --local-dir "$dir" || status=$?
    elif command -v huggingface-cli >/dev/null 2>&1; then
        huggingface-cli download "$repo" --local-dir "$dir" || status=$?
    elif command -v python3 >/dev/null 2>&1 && python3 -c 'import huggingface_hub' 2>/dev/null; then
        python3 -c 'import sys; from huggingface_hub import snapshot_download as d; d(sys.argv[1], local_dir=sys.argv[2])' \
            "$repo" "$dir" || status=$?
    else
        fail "no Hugging Face downloader: 'pip install -U huggingface_hub' (gives the hf command), or $offline"
        return
    fi
    if [ "$status" -ne 0 ]; then
        fail "downloading $repo failed: run ./prepare.sh again to resume (set HF_ENDPOINT for a mirror), or $offline"
    elif complete "$dir"; then
        ok "downloaded $repo into $dir"
    else
        fail "$dir is still incomplete after the download: run ./prepare.sh again to resume, or $offline"
    fi
}

download_weights() {
    local pipeline layout
    pipeline=$(setting HPS_PIPELINE_NAME PaddleOCR-VL-1.6)
    case "$pipeline" in
        PaddleOCR-VL) layout=PP-DocLayoutV2_safetensors ;;
        PaddleOCR-VL-1.5 | PaddleOCR-VL-1.6) layout=PP-DocLayoutV3_safetensors ;;
        *)
            fail "HPS_PIPELINE_NAME=$pipeline: use PaddleOCR-VL, PaddleOCR-VL-1.5 or PaddleOCR-VL-1.6"
            return
            ;;
    esac
    info "release $pipeline: VLM PaddlePaddle/$pipeline, layout PaddlePaddle/$layout, unwarping PaddlePaddle/UVDoc_onnx"
    fetch "PaddlePaddle/$pipeline" "$MODELS_DIR/$pipeline"
    fetch "PaddlePaddle/$layout" "$MODELS_DIR/$layout"
    fetch PaddlePaddle/UVDoc_onnx "$MODELS_DIR/UVDoc_onnx"
}

if [ "$mode" != download ]; then
    check_arch
    check_docker
    if [ "$mode" != cpu ]; then
        check_gpu
        check_toolkit
    fi
    if [ "$failures" -gt 0 ]; then
        echo "$failures check(s) failed: fix the FAIL lines above and run ./prepare.sh again (the CPU stack, 'make up', needs none of this)"
        exit 1
    fi
fi
[ "$mode" = check ] && exit 0

make_env
if [ "$mode" = cpu ]; then
    echo "Ready: 'docker compose --profile cpu up -d paddleocr-vl-api-cpu' (the CPU profile's weights ship inside its images)"
    exit 0
fi
if [ "$mode" != nodownload ]; then
    download_weights
fi
if [ "$failures" -gt 0 ]; then
    echo "$failures step(s) failed: see the FAIL lines above"
    exit 1
fi
echo "Ready: 'docker compose up -d', then 'curl http://localhost:$(setting HPS_GATEWAY_PUBLISH_PORT 8080)/health/ready'"
