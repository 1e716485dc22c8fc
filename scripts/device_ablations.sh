#!/bin/bash
# The binarization ablations on the GPU machine: binarize configs (default the four: full,
# BMB only, +LRMB, +SMB; binarize_shortcut adds the full-precision shortcut) for the same
# wall-clock budget on one GPU each, two lanes in parallel when two GPUs are present, then
# each run evaluated on the validation photos of both tracks. Runs go to runs/abl_<config>.
# Each run costs MINUTES plus about 40 s (start, evaluation): keep the lanes inside a call.
#
#   scripts/device_ablations.sh MINUTES [CONFIG ...]
#
# The frozen target is the FP one-step model (resources/training/onestep), kept in the history:
# restore it first with git checkout dda9c4c -- resources/training/onestep.
# Leaves eval_<config>.json, ablation_log.txt and ablation_meta.tar under $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
out=${OUT:?OUT must name the folder whose files come back}
minutes=${1:?minutes per run}
shift
configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=(binarize binarize_bmb binarize_lrmb binarize_smb)
ngpu=$(python3 -c 'import torch; print(max(1, torch.cuda.device_count()))')

lane() {  # GPU CONFIG...
    local gpu=$1; shift
    for config in "$@"; do
        CUDA_VISIBLE_DEVICES=$gpu python3 -m bimacosr_app.training.binarize \
            --config "bimacosr_app/training/configs/$config.json" --out "runs/abl_$config" \
            --budget-minutes "$minutes" 2>&1 | grep -v -i warn | sed "s/^/[$config] /"
        CUDA_VISIBLE_DEVICES=$gpu python3 -m bimacosr_app.training.evaluate \
            --checkpoint "runs/abl_$config" --json > "$out/eval_$config.json"
    done
}

if [ "$ngpu" -ge 2 ]; then  # even-numbered configs on GPU 0, odd on GPU 1
    even=() odd=()
    for i in "${!configs[@]}"; do
        if (( i % 2 )); then odd+=("${configs[i]}"); else even+=("${configs[i]}"); fi
    done
    lane 0 "${even[@]}" > >(tee -a "$out/ablation_log.txt") &
    lane 1 "${odd[@]}" > >(tee -a "$out/ablation_log.txt") &
    wait
else
    lane 0 "${configs[@]}" | tee -a "$out/ablation_log.txt"
fi
tar -cf "$out/ablation_meta.tar" runs/abl_*/log.jsonl runs/abl_*/val_grid.png
ls -la "$out"
