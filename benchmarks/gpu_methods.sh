#!/usr/bin/env bash
# Every pre-training method on one GPU, in one prepared script (about 8 minutes on an H200).
#   1. Training-step images/s of each method (geokr, classification, simclr, mocov2, byol):
#      ResNet50, 256 px chips, batch 128, bf16, fed from the store against the same loop fed
#      from memory (benchmarks/bench_methods.py; goal store/memory >= 0.9 for each).
#   2. While time is left (BUDGET_S seconds from the start, default 480): a fixed budget
#      (PRE_STEPS optimiser steps, the same for every method) of pre-training on a store
#      tiled and labelled from the shared Zion scene (NLCD), then UC Merced fine-tuning at
#      the five label fractions: one table, a row per method plus random initialisation.
# Needs python3 with torch, torchvision, zarr, lightly==1.6.0 and kornia==0.9.0; step 2 also
# rasterio and dask (geokr-etl). The repository is the working directory.
#   SCENE_NPY  the scene for step 1 as (H, W, 3) uint8 .npy, where rasterio is missing
#              (python benchmarks/bench_train.py --source SCENE.tif --export-npy scene.npy)
#   OUT        results (default gpu-methods); GEOKR_SHARED_DATA (default ../shared/data)
#   SMOKE=1    the same steps, tiny, on the CPU: checks the script, figures meaningless.
set -euo pipefail
out="${OUT:-gpu-methods}"
data="${GEOKR_SHARED_DATA:-../shared/data}"
budget="${BUDGET_S:-480}"
py="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
mkdir -p "$out"
if [ "${SMOKE:-0}" = 1 ]; then
    device=cpu arch=resnet18 size=32 batch=8 precision=fp32 n_chips=64 steps=2 rounds=1
    workers=0 pre_chip=64 pre_batch=8 pre_steps="${PRE_STEPS:-2}"
    eval_args=(--mode linear --image-size 32 --max-per-class 4 --repeats 1 --device cpu)
else
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
    device=cuda arch=resnet50 size=256 batch=128 precision=bf16 n_chips=4096 steps=15
    rounds=2 workers=12 pre_chip=128 pre_batch=128 pre_steps="${PRE_STEPS:-300}"
    eval_args=(--mode finetune --epochs "${FT_EPOCHS:-20}" --repeats 1 --device cuda)
fi
"$py" -c "import lightly, kornia, zarr" || { echo "error: install lightly==1.6.0 kornia==0.9.0 zarr"; exit 2; }

echo "== 1. step throughput per method ($arch, $size px, batch $batch, $precision)"
"$py" benchmarks/bench_methods.py --build-store "$out/bench.zarr" \
    --source "${SCENE_NPY:-$data/zion/landsat8_zion_bgrn.tif}" --n-chips "$n_chips" \
    --chip-size "$size" --arch "$arch" --batch-size "$batch" --precision "$precision" \
    --device "$device" --workers "$workers" --steps "$steps" --rounds "$rounds" \
    --json "$out/methods.json" 2>&1 | grep -v "step/s" | tee "$out/methods.txt"

left() { [ $((budget - SECONDS)) -gt "$1" ]; }
if ! left 120; then echo "no time left for step 2 (${SECONDS}s used)"; exit 0; fi
echo "== 2. fixed budget: $pre_steps steps x $pre_batch chips per method, then UC Merced"
store="$out/zion.zarr"
if [ ! -d "$store" ]; then
    "$py" -m pipeline.cli tile --store "$store" --chip-size "$pre_chip" --overlap 0.5 \
        --workers 4 --scenes "$data/zion/landsat8_zion_bgrn.tif"
    "$py" -m pipeline.cli label --store "$store" --landcover "$data/zion/nlcd.tif" \
        --legend nlcd8 --name nlcd8 --workers 4
fi
# --epochs E of --epoch-size chips is exactly the budget, and every schedule spans it;
# GeoKR's teacher moves 10 times in it (the paper's 3 000 steps are a fraction of an epoch
# of Levir-KR).
epochs=$((pre_steps < 10 ? pre_steps : 10))
inits=(--init random)
for method in geokr classification simclr mocov2 byol; do
    if ! left 60; then echo "budget spent before $method (${SECONDS}s)"; break; fi
    "$py" -m training.cli --store "$store" --labels nlcd8 --method "$method" \
        --out "$out/pretrain/$method" --arch "$arch" --batch-size "$pre_batch" \
        --precision "$precision" --device "$device" --workers "$workers" --epochs "$epochs" \
        --epoch-size $((pre_batch * pre_steps / epochs)) --warmup-epochs 1 --log-every 10 \
        --teacher-interval $(((pre_steps + 9) / 10)) \
        --resume 2>&1 | grep -v "step/s" | tail -3
    inits+=(--init "$method=$out/pretrain/$method/backbone.pth")
done
"$py" -c "from training.evaluation.cli import main; main()" classify --data "$data/ucmerced" \
    --out "$out/ucmerced" --arch "$arch" "${inits[@]}" "${eval_args[@]}" 2>&1 \
    | grep -v "cell/s" | tee "$out/ucmerced.txt"
echo "done in ${SECONDS}s: $out/methods.json, $out/ucmerced/table.md"
