#!/usr/bin/env bash
# The demo: the whole GeoKR pipeline on real sample data, a few minutes on a laptop CPU.
#   tile (Landsat 8 Zion scene in Gaofen band order + rasterio's RGB.byte.tif)
#   → label (NLCD 2011, a different CRS and grid; all 10 classes, since shrubland
#     covers a third of Zion)                       → dataset statistics (Table II)
#   → pre-train a small ResNet-18 with GeoKR, and with BYOL (no labels) on the same
#     chips with the same budget                  → linear probe on UC Merced,
#     random initialisation against BYOL and the GeoKR teacher.
# Small on purpose: 64 px chips and a ResNet-18 so that it finishes on CPU; the
# paper's 256 px chips and ResNet-50 are the defaults of every command.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh train,dev
export MPLBACKEND=Agg
data="${GEOKR_SHARED_DATA:-../shared/data}"
out="${1:-demo-output}"
rm -rf "$out"
mkdir -p "$out"
bin=.venv/bin

echo "== 1. tile: scenes → chip store"
"$bin/geokr-etl" tile --store "$out/demo.zarr" --chip-size 64 --workers 2 \
    --scenes "$data/zion/landsat8_zion_bgrn.tif" --scenes "$data/rgb_byte/RGB.byte.tif"

echo "== 2. label: NLCD 2011 land-cover proportions per chip"
"$bin/geokr-etl" label --store "$out/demo.zarr" --landcover "$data/zion/nlcd2011.tif" \
    --legend nlcd --name nlcd --classes all --workers 2

echo "== 3. stats: Table II and figures"
"$bin/geokr-etl" stats --store "$out/demo.zarr" --out "$out/stats"

budget=(--arch resnet18 --epochs 7 --batch-size 32 --precision fp32 --workers 0 \
    --log-every 5 --device cpu)
echo "== 4. train: GeoKR student/teacher pre-training (small model, CPU)"
"$bin/geokr-train" --store "$out/demo.zarr" --labels nlcd --out "$out/run" \
    "${budget[@]}" --teacher-interval 20

echo "== 5. train: the BYOL baseline on the same chips, same budget (no labels used)"
"$bin/geokr-train" --store "$out/demo.zarr" --labels nlcd --method byol --out "$out/byol" \
    "${budget[@]}" --warmup-epochs 1 --knn-bank 256

echo "== 6. evaluate: linear probe on UC Merced, random vs BYOL vs GeoKR initialisation"
"$bin/geokr-eval" classify --data "$data/ucmerced" --out "$out/eval" --arch resnet18 \
    --init random --init "byol=$out/byol/backbone.pth" --init "geokr=$out/run/backbone.pth" \
    --mode linear --image-size 64 --max-per-class 40 --repeats 3 --device cpu

echo "demo outputs are in $out/"
