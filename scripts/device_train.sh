#!/bin/bash
# Run training stages on the GPU machine, one after another, with every GPU (torchrun), and
# leave what must come back under $OUT: per run its EMA weights and optionally its live
# weights (to resume there later); meta.tar with every run's config, state, log and
# validation grid; train_log.txt with everything printed.
#
#   scripts/device_train.sh STAGE:RUN:MINUTES[:CONFIG[:keep[:KEY=VALUE,...]]] ...
#
# STAGE is teacher|onestep|binarize, RUN the folder under runs/ (resumed when present, e.g.
# carried from an earlier call), MINUTES the stage's wall-clock budget, CONFIG a file of
# bimacosr_app/training/configs/ without .json (default: STAGE), and "keep" also returns the
# live weights; KEY=VALUE pairs are --set overrides of the stage config (e.g.
# init=runs/teacher0,gt_weight=0.5). A failed stage is reported and the next one still runs.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
out=${OUT:?OUT must name the folder whose files come back}
ngpu=$(python3 -c 'import torch; print(max(1, torch.cuda.device_count()))')
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
for spec in "$@"; do
    IFS=: read -r stage run minutes config keep overrides <<< "$spec"
    config=${config:-$stage}
    sets=()
    IFS=, read -ra pairs <<< "${overrides:-}"
    for pair in "${pairs[@]}"; do sets+=(--set "$pair"); done
    echo "=== $stage -> runs/$run ($minutes min, config $config, $ngpu GPU)"
    torchrun --standalone --nproc_per_node="$ngpu" -m "bimacosr_app.training.$stage" \
        --config "bimacosr_app/training/configs/$config.json" --out "runs/$run" \
        --budget-minutes "$minutes" "${sets[@]}" 2>&1 | grep -v -i warning | tee -a "$out/train_log.txt"
    [ "${PIPESTATUS[0]}" = 0 ] || echo "=== $stage ($run) FAILED" | tee -a "$out/train_log.txt"
    mkdir -p "$out/$run"
    cp runs/"$run"/ema-*.safetensors "$out/$run/" 2>/dev/null
    [ "${keep:-}" = keep ] && cp runs/"$run"/model-*.safetensors "$out/$run/"
done
tar -cf "$out/meta.tar" $(ls runs/*/config.json runs/*/state.json runs/*/log.jsonl runs/*/val_grid.png 2>/dev/null)
ls -la "$out" "$out"/*/
