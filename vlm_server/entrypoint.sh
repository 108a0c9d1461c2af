#!/usr/bin/env bash
# Tier 3 on a GPU: refuse early on a host vLLM cannot serve well, then exec `vllm serve` for the
# PaddleOCR-VL release of HPS_PIPELINE_NAME, named as the engine will ask for it.
#
#   HPS_PIPELINE_NAME            PaddleOCR-VL | PaddleOCR-VL-1.5 | PaddleOCR-VL-1.6 (default)
#   HPS_VLM_MODEL_NAME           served model name (default: PaddleOCR-VL[-1.5|-1.6]-0.9B)
#   VLM_MODELS_DIR               mounted weights, one folder per pipeline (default /models); else the HF id
#   VLM_GPU_MEMORY_UTILIZATION   default 0.5      VLM_MAX_MODEL_LEN  default 16384
#   VLM_MAX_NUM_SEQS             default 256      VLM_HOST / VLM_PORT default 0.0.0.0 / 8080
#   VLM_EXTRA_ARGS               more `vllm serve` flags, word-split; they come last, so they win
set -euo pipefail

die() {
    echo "vlm_server: $*" >&2
    exit 1
}

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"

# Compute capability 8.0 (Ampere) up to, not including, 12.0: below 8 the upstream docs report timeouts
# and OOM under vLLM; 12.x (consumer Blackwell, sm_120) needs images built for it.
check_gpus() {
    command -v nvidia-smi >/dev/null 2>&1 \
        || die "no NVIDIA GPU visible: nvidia-smi is not available (run the container with GPUs, or use the CPU profile)"
    local caps cap major minor
    caps="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>&1)" \
        || die "no NVIDIA GPU visible: nvidia-smi says '$(head -n 1 <<<"$caps")'"
    [[ -n "${caps//[[:space:]]/}" ]] || die "no NVIDIA GPU visible: nvidia-smi lists no GPU"
    while read -r cap; do
        cap="${cap//[[:space:]]/}"
        [[ -z "$cap" ]] && continue
        [[ "$cap" =~ ^([0-9]+)\.([0-9]+)$ ]] || die "cannot read the GPU compute capability from nvidia-smi: '$cap'"
        major="${BASH_REMATCH[1]}" minor="${BASH_REMATCH[2]}"
        if ((major < 8 || major >= 12)); then
            die "GPU compute capability $major.$minor is not supported: vLLM here needs 8.0 <= cc < 12.0"
        fi
    done <<<"$caps"
}

check_gpus

pipeline="${HPS_PIPELINE_NAME:-PaddleOCR-VL-1.6}"
case "$pipeline" in
    PaddleOCR-VL) served=PaddleOCR-VL-0.9B template=paddleocr_vl.jinja ;;
    PaddleOCR-VL-1.5) served=PaddleOCR-VL-1.5-0.9B template=paddleocr_vl_1.5.jinja ;;
    PaddleOCR-VL-1.6) served=PaddleOCR-VL-1.6-0.9B template=paddleocr_vl_1.5.jinja ;;
    *) die "unknown HPS_PIPELINE_NAME '$pipeline' (PaddleOCR-VL, PaddleOCR-VL-1.5 or PaddleOCR-VL-1.6)" ;;
esac

weights="${VLM_MODELS_DIR:-/models}/$pipeline"
if [[ -f "$weights/config.json" ]]; then
    model="$weights"
else
    model="PaddlePaddle/$pipeline"
fi

read -r -a extra <<<"${VLM_EXTRA_ARGS:-}"

exec vllm serve "$model" \
    --served-model-name "${HPS_VLM_MODEL_NAME:-$served}" \
    --chat-template "$here/chat_templates/$template" \
    --trust-remote-code \
    --max-num-batched-tokens 16384 \
    --no-enable-prefix-caching \
    --mm-processor-cache-gb 0 \
    --gpu-memory-utilization "${VLM_GPU_MEMORY_UTILIZATION:-0.5}" \
    --max-model-len "${VLM_MAX_MODEL_LEN:-16384}" \
    --max-num-seqs "${VLM_MAX_NUM_SEQS:-256}" \
    --host "${VLM_HOST:-0.0.0.0}" \
    --port "${VLM_PORT:-8080}" \
    "${extra[@]}"
