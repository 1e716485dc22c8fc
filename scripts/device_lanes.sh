#!/bin/bash
# Several training runs at once on the GPU machine, each for the same wall-clock budget (an
# ablation at one budget), then each evaluated on the validation photos of both tracks.
# Lanes are dealt round robin to the GPUs; lanes that share a GPU run concurrently (one of
# these small models leaves most of an H100 idle, so four lanes on one GPU each get about
# half of its single-lane speed).
#
#   scripts/device_lanes.sh MINUTES STAGE:RUN[:CONFIG[:KEY=VALUE,...]] ...
#
# STAGE is teacher|onestep|binarize, RUN the folder under runs/ (resumed when present), CONFIG
# a file of bimacosr_app/training/configs/ without .json (default: STAGE), KEY=VALUE pairs
# --set overrides. EVAL_SECONDS (default 200) bounds each evaluation (0: none, evaluate the
# weights elsewhere); KEEP=run1,run2 copies
# those runs' EMA weights under $OUT/<run>/ (about 15 MiB each: at most four fit what comes
# back). LANE_SECONDS (default: none) kills a lane's training that is still running that many
# seconds after it started (a first step that compiles long, a slow final validation), so the
# call ends in time to keep what the lanes saved last (their periodic and final checkpoints);
# set it below the machine's per-call limit minus about a minute. Leaves lanes_log.txt and lanes_meta.tar (configs, states, logs, grids, eval_<run>.json);
# exits 1 when a lane failed: its training, or its evaluation (after keeping what the
# others made).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
out=${OUT:?OUT must name the folder whose files come back}
minutes=${1:?minutes per run}
shift
ngpu=$(python3 -c 'import torch; print(max(1, torch.cuda.device_count()))')
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader

lane() {  # GPU STAGE RUN CONFIG OVERRIDES
    local gpu=$1 stage=$2 run=$3 config=$4 overrides=$5 sets=() pairs=()
    IFS=, read -ra pairs <<< "$overrides"
    for pair in "${pairs[@]}"; do sets+=(--set "$pair"); done
    local limit=()
    [ -n "${LANE_SECONDS:-}" ] && limit=(timeout -k 15 "$LANE_SECONDS")
    CUDA_VISIBLE_DEVICES=$gpu "${limit[@]}" python3 -m "bimacosr_app.training.$stage" \
        --config "bimacosr_app/training/configs/$config.json" --out "runs/$run" \
        --budget-minutes "$minutes" "${sets[@]}" 2>&1 | grep --line-buffered -v -i warn |
        sed -u "s/^/[$run] /"
    local status=${PIPESTATUS[0]}
    if [ "$status" != 0 ]; then
        echo "[$run] training failed (exit $status)"
        return "$status"
    fi
    [ "${EVAL_SECONDS:-200}" = 0 ] && return
    CUDA_VISIBLE_DEVICES=$gpu timeout "${EVAL_SECONDS:-200}" python3 -m \
        bimacosr_app.training.evaluate --checkpoint "runs/$run" --json \
        > "runs/$run/eval_$run.json" 2> >(sed "s/^/[$run eval] /")
    python3 - "runs/$run/eval_$run.json" "$run" <<'EOF'
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except ValueError:
    sys.exit(f"[{sys.argv[2]}] evaluation did not finish")
print(f"[{sys.argv[2]}] whole val photos: " + ", ".join(
    f"{t} {r[t]['mean']['psnr_y']:.3f} (bicubic {r[t]['mean']['bicubic_psnr_y']:.3f})"
    for t in ("bicubic", "realistic")))
EOF
}

{
    i=0 pids=() failed=0
    for spec in "$@"; do
        IFS=: read -r stage run config overrides <<< "$spec"
        lane $((i % ngpu)) "$stage" "$run" "${config:-$stage}" "${overrides:-}" &
        pids+=($!)
        i=$((i + 1))
    done
    for pid in "${pids[@]}"; do wait "$pid" || failed=$((failed + 1)); done
    exit "$failed"
} 2>&1 | tee -a "$out/lanes_log.txt"
failed=${PIPESTATUS[0]}
tar -cf "$out/lanes_meta.tar" $(ls runs/*/config.json runs/*/state.json runs/*/log.jsonl \
    runs/*/val_grid.png runs/*/eval_*.json 2>/dev/null)
IFS=, read -ra keep <<< "${KEEP:-}"
for run in "${keep[@]}"; do
    mkdir -p "$out/$run" && cp runs/"$run"/ema-*.safetensors "$out/$run/"
done
ls -la "$out" "$out"/*/ 2>/dev/null
[ "$failed" = 0 ] || { echo "$failed lane(s) failed" >&2; exit 1; }
