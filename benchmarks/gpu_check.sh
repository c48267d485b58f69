#!/usr/bin/env bash
# The GPU checks in one prepared script (about 8 minutes on one H100/H200).
#   1. Trainer step throughput, ResNet50 and VGG16, 256 px chips, batch 128, bf16:
#      fed from the real store layout against the same loop fed from memory.
#   2. The harness check against the paper's Table IV (random-init ResNet50 on UC Merced),
#      one repeat, unless SKIP_UCMERCED=1.
# Needs python3 with torch, torchvision and zarr; the repo as working directory.
#   SCENE_NPY  an (H, W, 3) uint8 scene, made where rasterio exists with
#              python benchmarks/bench_train.py --source SCENE.tif --export-npy scene.npy
#   UCMERCED   the UC Merced folder (default ../shared/data/ucmerced)
#   OUT        where the results go (default gpu-results)
set -euo pipefail
out="${OUT:-gpu-results}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
PYTHONUNBUFFERED=1 python3 benchmarks/bench_train.py --build-store /tmp/geokr-bench.zarr \
    --source "${SCENE_NPY:-scene.npy}" --n-chips 4096 --chip-size 256 \
    --arch resnet50 --arch vgg16 --batch-size 128 --precision bf16 --device cuda \
    --workers 12 --steps 30 --rounds 2 --json "$out/train.json" 2>&1 | tee "$out/train.txt"
if [ "${SKIP_UCMERCED:-0}" != 1 ]; then
    PYTHONUNBUFFERED=1 PYTHONPATH=. python3 benchmarks/gpu_ucmerced.py \
        --data "${UCMERCED:-../shared/data/ucmerced}" --out "$out/ucmerced.md" --repeats 1 \
        2>&1 | tee "$out/ucmerced.txt"
fi
