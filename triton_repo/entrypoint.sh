#!/usr/bin/env bash
# Triton container entrypoint: make sure the layout weights are there (GPU profile), and the UVDoc model of
# useDocUnwarping, write the served model repository for the profile, then exec tritonserver (extra
# arguments are passed on to it).
#
# Layout weights: $HPS_LAYOUT_MODEL_DIR if set; else /models/<repo name> when complete (prepare.sh puts them
# there); else they are downloaded from Hugging Face, into /models when it is writable, otherwise into the
# cache at $HF_HOME (a volume in compose.yaml). UVDoc (PaddlePaddle/UVDoc_onnx) is found or fetched the same
# way from $HPS_DOC_UNWARPING_MODEL_DIR or /models/UVDoc_onnx, but a failed download only warns: the server
# starts without it and refuses useDocUnwarping with a 422 that says how to add it.
set -euo pipefail

profile=${HPS_PROFILE:-gpu}
pipeline=${HPS_PIPELINE_NAME:-PaddleOCR-VL-1.6}
models=${HPS_MODELS_DIR:-/models}
source_repo=${HPS_TRITON_REPO_SOURCE:-/opt/triton_repo} # as built into the image
served_repo=${HPS_TRITON_MODEL_REPO:-/opt/model_repo}   # what Triton serves: the copy for this profile

log() { echo "entrypoint: $*" >&2; }

layout_repo() {
    case "$1" in
        PaddleOCR-VL) echo PaddlePaddle/PP-DocLayoutV2_safetensors ;;
        PaddleOCR-VL-1.5 | PaddleOCR-VL-1.6) echo PaddlePaddle/PP-DocLayoutV3_safetensors ;;
        *)
            log "HPS_PIPELINE_NAME=$1: use PaddleOCR-VL, PaddleOCR-VL-1.5 or PaddleOCR-VL-1.6"
            return 2
            ;;
    esac
}

# complete DIR: the weights are there (an ONNX repository's inference.onnx, else a config and the
# safetensors), and no download was left half done.
complete() {
    case "$1" in
        *_onnx) [ -f "$1/inference.onnx" ] || return 1 ;;
        *) [ -f "$1/config.json" ] && compgen -G "$1/*.safetensors" >/dev/null || return 1 ;;
    esac
    [ -z "$(find "$1" -name '*.incomplete' -print -quit 2>/dev/null)" ]
}

# download REPO [DIR]: snapshot REPO into DIR (or the cache) and print where it is. Resumes a partial one.
download() {
    python - "$1" "${2:-}" <<'EOF'
import sys
from huggingface_hub import snapshot_download
print(snapshot_download(sys.argv[1], local_dir=sys.argv[2] or None))
EOF
}

# weights_dir REPO SETTING: print the directory that holds REPO's weights, downloading them when missing.
weights_dir() {
    local repo=$1 dir=$models/${1#*/} where
    if complete "$dir"; then
        echo "$dir"
        return
    fi
    local advice="put the weights in ./models/${repo#*/} on the host (./prepare.sh --download-only on a connected machine, then copy) or set $2"
    if [ -w "$models" ]; then
        log "$dir is missing or incomplete: downloading $repo into it"
        where=$(download "$repo" "$dir") || { log "downloading $repo failed: $advice" && return 1; }
    else
        log "$models is not writable: downloading $repo into the cache $HF_HOME (./prepare.sh keeps it in ./models)"
        where=$(download "$repo") || { log "downloading $repo failed: $advice" && return 1; }
    fi
    echo "${where##*$'\n'}"
}

case "$profile" in
    gpu | cpu) ;;
    *)
        log "HPS_PROFILE=$profile: use gpu or cpu"
        exit 2
        ;;
esac

if [ "$profile" = gpu ] && [ -z "${HPS_LAYOUT_MODEL_DIR:-}" ]; then
    repo=$(layout_repo "$pipeline")
    HPS_LAYOUT_MODEL_DIR=$(weights_dir "$repo" HPS_LAYOUT_MODEL_DIR)
    export HPS_LAYOUT_MODEL_DIR
fi
[ "$profile" = gpu ] && log "layout weights: $HPS_LAYOUT_MODEL_DIR"
if [ "$profile" = gpu ] && [ -z "${HPS_DOC_UNWARPING_MODEL_DIR:-}" ]; then
    if HPS_DOC_UNWARPING_MODEL_DIR=$(weights_dir PaddlePaddle/UVDoc_onnx HPS_DOC_UNWARPING_MODEL_DIR); then
        export HPS_DOC_UNWARPING_MODEL_DIR
        log "unwarping model: $HPS_DOC_UNWARPING_MODEL_DIR"
    else
        unset HPS_DOC_UNWARPING_MODEL_DIR
        log "starting without the unwarping model: useDocUnwarping will be refused with 422"
    fi
fi

# The served repository for this profile. The container sees only the GPU that compose reserved for it, as
# device 0. Instance count and batching delay come from HPS_TRITON_INSTANCES / HPS_TRITON_QUEUE_DELAY_US.
python "$source_repo/configure.py" --profile "$profile" --device-id 0 --out "$served_repo" >&2

# The Python backend's shared-memory regions are named after this server (its PID and start time: `exec` below
# keeps both), so that what a crashed server left in /dev/shm is removed here, and a live server's never is.
# started PID: the start time (field 22 of /proc/PID/stat) of a live process, empty for none.
started() {
    local stat
    read -r -a stat <"/proc/$1/stat" 2>/dev/null || return 0
    echo "${stat[21]}"
}
shm_prefix="paddleocr_vl_$$_$(started $$)_"
for region in /dev/shm/paddleocr_vl_*; do
    [ -e "$region" ] || continue
    name=${region#/dev/shm/paddleocr_vl_}
    pid=${name%%_*} rest=${name#*_}
    [ "$(started "$pid")" = "${rest%%_*}" ] || rm -f "$region"
done

args=(
    --model-repository="$served_repo"
    --http-port=8000 --grpc-port=8001 --metrics-port=8002
    --strict-readiness=true
    --exit-on-error=true
    --disable-auto-complete-config
    # Shared memory per model instance for requests and responses (compose gives the container 4 GB).
    "--backend-config=python,shm-default-byte-size=104857600"
    "--backend-config=python,shm-growth-byte-size=10485760"
    "--backend-config=python,shm-region-prefix-name=$shm_prefix"
    --log-verbose=0
)
if [ "$profile" = cpu ]; then
    # Nothing to pin or measure without a GPU; these also keep the CUDA/NVML warnings out of the log.
    args+=(--pinned-memory-pool-byte-size=0 --allow-gpu-metrics=false)
fi
exec tritonserver "${args[@]}" "$@"
