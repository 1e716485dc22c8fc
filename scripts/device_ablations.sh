#!/bin/bash
# The binarization ablations on the GPU machine: the four binarize configs (full, BMB only,
# +LRMB, +SMB) for the same wall-clock budget on one GPU each, two lanes in parallel when
# two GPUs are present, then each run evaluated on the validation photos of both tracks.
#
#   scripts/device_ablations.sh MINUTES [RUN_PREFIX]
#
# The frozen target is the committed FP one-step model (resources/training/onestep).
# Leaves eval_<config>.json, ablation_log.txt and ablation_meta.tar under $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
out=${OUT:?OUT must name the folder whose files come back}
minutes=${1:?minutes per run}
prefix=${2:-abl}
ngpu=$(python3 -c 'import torch; print(max(1, torch.cuda.device_count()))')

lane() {  # GPU CONFIG...
    local gpu=$1; shift
    for config in "$@"; do
        CUDA_VISIBLE_DEVICES=$gpu python3 -m bimacosr_app.training.binarize \
            --config "bimacosr_app/training/configs/$config.json" --out "runs/${prefix}_$config" \
            --budget-minutes "$minutes" 2>&1 | grep -v -i warn | sed "s/^/[$config] /"
        CUDA_VISIBLE_DEVICES=$gpu python3 -m bimacosr_app.training.evaluate \
            --checkpoint "runs/${prefix}_$config" --json > "$out/eval_$config.json"
    done
}

if [ "$ngpu" -ge 2 ]; then
    lane 0 binarize binarize_bmb > >(tee -a "$out/ablation_log.txt") &
    lane 1 binarize_lrmb binarize_smb > >(tee -a "$out/ablation_log.txt") &
    wait
else
    lane 0 binarize binarize_bmb binarize_lrmb binarize_smb | tee -a "$out/ablation_log.txt"
fi
tar -cf "$out/ablation_meta.tar" runs/"${prefix}"_*/log.jsonl runs/"${prefix}"_*/val_grid.png
ls -la "$out"
