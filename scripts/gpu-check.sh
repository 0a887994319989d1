#!/bin/bash
# GPU checks for u2ad, as one run on a lent GPU machine (no network there): training speed and
# MC speed of the paper model on CUDA, then, in parallel, two whole demos on CUDA (demo-sized and a
# shortened paper configuration) and a learning-rate/batch sweep of the demo-sized model.
#
# Prepare it here (the `cuda` build needs no network and no GPU; about 13 minutes on 2 cores):
#   cargo build --release --features cuda -p u2ad-cli --target-dir target/cuda
#   mkdir -p tmp/gpu/cfg tmp/gpu/data && strip -o tmp/gpu/u2ad target/cuda/release/u2ad
#   cp -r ../shared/data/spine-t2 ../shared/data/SOURCES.tsv tmp/gpu/data/
#   cp scripts/gpu-check.sh tmp/gpu/run.sh && cp scripts/gpu-configs/*.toml tmp/gpu/cfg/
# then run `bash tmp/gpu/run.sh` on the device, carrying tmp/gpu (about 56 MB); results in $OUT.
cd "$(dirname "$0")/../.."
G=$PWD/tmp/gpu; U=$G/u2ad; chmod +x $U
W=/tmp/w; mkdir -p $W
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > $OUT/gpu.txt 2>&1
export U2AD_DATA=$G/data
$U --version >> $OUT/gpu.txt 2>&1
$U -q prepare $G/data/spine-t2 -o $W/h3.u2ds --include sub-errsm11 --include sub-errsm18 --include sub-errsm21 > $OUT/prepare.log 2>&1
# 1. Training speed alone: paper configuration, batch 10, 6 epochs of 51 slices.
( time timeout 100 $U pretrain $W/h3.u2ds --device cuda --out $W/speed --config configs/paper.toml --epochs 6 ) > $OUT/speed.log 2>&1
cp $W/speed/losses.csv $OUT/speed_losses.csv
# 2. MC speed alone: detect the 3 healthy subjects (51 slices), K = 10, batch 8 and 32 copies.
( time timeout 60 $U detect $W/h3.u2ds --model $W/speed/model.safetensors --out $W/det8 --device cuda --pooling pooled ) > $OUT/detect8.log 2>&1
( time timeout 60 $U detect $W/h3.u2ds --model $W/speed/model.safetensors --out $W/det32 --device cuda --mc-batch 32 --pooling pooled ) > $OUT/detect32.log 2>&1
nvidia-smi --query-gpu=memory.used --format=csv >> $OUT/gpu.txt
# 3. In parallel: demos and the sweep.
( time timeout 330 $U demo --device cuda --data $G/data --out $W/demo-paper --config $G/cfg/paper-short.toml ) > $OUT/demo-paper.log 2>&1 &
( time timeout 300 $U demo --device cuda --data $G/data --out $W/demo-default ) > $OUT/demo-default.log 2>&1 &
for s in s1 s2 s3 s4; do
  ( timeout 280 $U -q pretrain $W/h3.u2ds --device cuda --out $W/$s --config $G/cfg/$s.toml ) > $OUT/$s.log 2>&1 &
done
wait
for s in s1 s2 s3 s4 demo-paper/runs/pretrain demo-paper/runs/adapt demo-default/runs/pretrain demo-default/runs/adapt; do
  d=$OUT/$(echo $s | tr / _); mkdir -p $d
  cp $W/$s/*.csv $W/$s/*.png $d/ 2>/dev/null
done
for s in demo-paper demo-default; do
  cp $W/$s/evaluation/evaluation.md $OUT/$s-evaluation.md 2>/dev/null
  one=$(ls -d $W/$s/detect/u2ad/sub-* 2>/dev/null | head -1)
  [ -n "$one" ] && mkdir -p $OUT/$s-one && cp $one/anat/*.csv $one/anat/*patient_scores.json $one/figures/*.png $OUT/$s-one/ 2>/dev/null
done
ls -R $W/demo-paper/detect/u2ad | head -40 > $OUT/demo-paper-files.txt
echo done
