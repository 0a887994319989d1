#!/usr/bin/env bash
# A second, larger leave-host-out cohort for the path from maps to calls (BENCHMARKS.md): on a
# finished `u2ad demo` folder, synthesise 10 new copies of each target host (another seed, so
# fresh noise, bias fields, gains and lesions; 2 lesions at distinct levels in 70 % of the
# copies, 1.2-2.0x, a third at the cord's edge), detect them with the demo's adapted model
# (pretraining never saw these hosts; every threshold is calibrated on the other hosts only),
# score them with the current default and with the variants below, run the intensity recipe,
# and evaluate; then the same with every cord mask grown or shrunk by one voxel. 30 subjects and
# 44 lesion levels, against 15 and 12 in the demo. About 20 minutes on 2 cores.
#
#   u2ad demo --out u2ad-demo && scripts/leave-host-out-heldout.sh u2ad-demo ../shared/data
#
# Writes only inside the demo folder (heldout/, heldout*.u2ds, detect-heldout/, eval-heldout/,
# runs/adapt-seedS/) and prints the headline columns. U2AD=path/to/u2ad picks the binary.
#
# SEEDS="1 2" also adapts the demo's pretrained model with those seeds (about 5 minutes each here;
# a finished run is resumed, not retrained) and detects the cohort, masks as given and one voxel
# off, with each (seedS, seedS-mask1, seedS-mask-1). One adapted model moves segment AUROC by up to
# 0.1 on this cohort, so read the targets on the mean over seeds (BENCHMARKS.md).
set -euo pipefail
demo=${1:?usage: $0 DEMO_FOLDER DATA_FOLDER}
data=$(cd "${2:?usage: $0 DEMO_FOLDER DATA_FOLDER (the folder holding spine-t2/)}" && pwd)
u2ad=${U2AD:-u2ad}
[ -d "$data/spine-t2" ] || { echo "$data: no spine-t2/ inside" >&2; exit 1; }
cd "$demo"
[ -f demo.toml ] && [ -f runs/adapt/model.safetensors ] || { echo "$demo: not a finished u2ad demo folder" >&2; exit 1; }
rm -rf heldout heldout.u2ds heldout1.u2ds heldout-1.u2ds detect-heldout eval-heldout
"$u2ad" synth "$data/spine-t2" --out heldout --subjects-per-source 10 --lesions-per-subject 2 \
  --lesion-free-fraction 0.3 --contrast 1.2:2.0 --length-mm 5:12 --edge-fraction 0.3333 \
  --bias-field 0.15 --intensity-scale 0.8:1.25 --seed 11 \
  --include sub-errsm21 --include sub-errsm23 --include sub-errsm30 --quiet
"$u2ad" prepare heldout -o heldout.u2ds --quiet
calls=(--pooling pooled --min-reference 10 --quiet)
model=runs/adapt/model.safetensors
"$u2ad" detect heldout.u2ds --model "$model" --out detect-heldout/u2ad "${calls[@]}"
rescore() {
  local name=$1; shift
  cp -r detect-heldout/u2ad "detect-heldout/$name"
  "$u2ad" detect heldout.u2ds --model "$model" --out "detect-heldout/$name" "${calls[@]}" "$@"
}
rescore erosion2 --cord-erosion-mm 2
rescore erosion1.5 --cord-erosion-mm 1.5
rescore scopelevel --fpr-scope level
"$u2ad" baseline heldout.u2ds --method intensity --out detect-heldout/intensity "${calls[@]}"
# Every cord mask grown or shrunk by one voxel in 3-D (new Monte-Carlo maps), default and fixed 2 mm.
for offset in 1 -1; do
  "$u2ad" prepare heldout -o "heldout$offset.u2ds" --cord-offset-voxels="$offset" --quiet
  "$u2ad" detect "heldout$offset.u2ds" --model "$model" --out "detect-heldout/mask$offset" "${calls[@]}"
  cp -r "detect-heldout/mask$offset" "detect-heldout/mask$offset-erosion2"
  "$u2ad" detect "heldout$offset.u2ds" --model "$model" --out "detect-heldout/mask$offset-erosion2" "${calls[@]}" --cord-erosion-mm 2
  "$u2ad" baseline "heldout$offset.u2ds" --method intensity --out "detect-heldout/intensity-mask$offset" "${calls[@]}"
done
seeded=()
for seed in ${SEEDS:-}; do
  dir=runs/adapt-seed$seed
  resume=()
  [ -d "$dir" ] && resume=(--resume)
  "$u2ad" adapt target.u2ds --model runs/pretrain/model.safetensors --out "$dir" --config demo.toml --seed "$seed" "${resume[@]}" --quiet
  for offset in "" 1 -1; do
    name=seed$seed${offset:+-mask$offset}
    "$u2ad" detect "heldout$offset.u2ds" --model "$dir/model.safetensors" --out "detect-heldout/$name" "${calls[@]}"
    seeded+=("$name")
  done
done
methods=()
for d in u2ad erosion2 erosion1.5 scopelevel intensity mask1 mask1-erosion2 intensity-mask1 mask-1 mask-1-erosion2 intensity-mask-1 "${seeded[@]}"; do
  methods+=(--detections "$d=detect-heldout/$d")
done
"$u2ad" evaluate "${methods[@]}" --truth heldout --out eval-heldout --quiet > /dev/null
echo "eval-heldout/evaluation.md (segment AUROC, AUPRC, F1 / patient F1, AUROC):"
awk -F, 'NR > 1 && $2 == "all" && ($5 == "segment" || $5 == "patient") && ($6 == "auroc" || $6 == "auprc" || $6 == "f1") { printf "%-12s %-8s %-6s %.3f\n", $1, $5, $6, $7 }' eval-heldout/evaluation.csv
