#!/usr/bin/env bash
# The ablations of BENCHMARKS.md's leave-host-out benchmark, on a finished `u2ad demo` folder:
# one change to the path from maps to calls at a time (Monte-Carlo maps reused), and every cord
# mask grown or shrunk by one voxel (new Monte-Carlo maps), then one evaluation of them all.
#
#   u2ad demo --ablations --out u2ad-demo && scripts/leave-host-out-ablations.sh u2ad-demo
#
# Writes only inside the demo folder (detect/a-*, detect/mask*, detect/b*, target±1.u2ds,
# eval-ablation/) and prints the evaluation tables. U2AD=path/to/u2ad picks the binary.
set -euo pipefail
demo=${1:?usage: $0 DEMO_FOLDER}
u2ad=${U2AD:-u2ad}
cd "$demo"
[ -f demo.toml ] && [ -d detect/u2ad ] || { echo "$demo: not a finished u2ad demo folder" >&2; exit 1; }
calls=(--pooling pooled --min-reference 10 --quiet)
rescore() {
  local name=$1; shift
  rm -rf "detect/a-$name"; cp -r detect/u2ad "detect/a-$name"
  "$u2ad" detect target.u2ds --model runs/adapt/model.safetensors --out "detect/a-$name" "${calls[@]}" "$@"
}
rescore keepcsf --csf-partial-volume keep
rescore erosion1 --cord-erosion-mm 1
rescore erosion2 --cord-erosion-mm 2
rescore curve --level-score curve-peak
rescore scopelevel --fpr-scope level
rescore eulegacy --eu-gate-margin -1
# Calibration against copies of the same host (what the benchmark must not do), and the calls of
# main before the leave-host-out work: the participants file is set aside for these two.
mv synth/participants.tsv synth/participants.tsv.aside
trap 'mv synth/participants.tsv.aside synth/participants.tsv 2>/dev/null || true' EXIT
rescore loso
rescore legacyall --level-score curve-peak --fpr-scope level --eu-gate-margin -1
mv synth/participants.tsv.aside synth/participants.tsv
"$u2ad" baseline target.u2ds --method intensity --out detect/b-csf "${calls[@]}" --csf-partial-volume exclude
"$u2ad" baseline target.u2ds --method intensity-voxel-z --out detect/b-voxelz "${calls[@]}" --fpr-scope level --level-score curve-peak
for offset in 1 -1; do
  "$u2ad" prepare synth -o "target$offset.u2ds" --cord-offset-voxels="$offset" --quiet
  "$u2ad" detect "target$offset.u2ds" --model runs/adapt/model.safetensors --out "detect/mask$offset" "${calls[@]}"
  "$u2ad" baseline "target$offset.u2ds" --method intensity --out "detect/bmask$offset" "${calls[@]}"
done
methods=()
for d in u2ad a-keepcsf a-erosion1 a-erosion2 a-curve a-scopelevel a-eulegacy a-loso a-legacyall mask1 mask-1 \
         intensity b-csf b-voxelz bmask1 bmask-1 ablation-random ablation-eu; do
  [ -d "detect/$d" ] && methods+=(--detections "$d=detect/$d")
done
"$u2ad" evaluate "${methods[@]}" --truth synth --out eval-ablation
