#!/usr/bin/env bash
# Throughput of hwml's Dask execution layer against the per-GPU processes it replaced, on
# this machine's GPUs (not run in CI: it needs a GPU).
#
#   scripts/cluster_throughput.sh [OUT_DIR]
#
# The same work is done twice, each into its own scratch folder under OUT_DIR (default
# /tmp/hwml-throughput):
#   layers  LAYERS (default 400) random conv2d and linear layers, fp32, with power:
#           dask  = one `hwml profile layers --cluster local` (one worker per GPU);
#           shard = one process per GPU (CUDA_VISIBLE_DEVICES=i, --shard i/N, --cluster
#                   process), the way scripts/measure.sh ran sweeps before --cluster;
#   train   CONFIGS (default 96) benchmark trainings of EPOCHS (default 10) epochs on
#           cued-digits, WORKERS (default 4) at a time per GPU:
#           dask  = one `hwml optimize benchmark train --cluster local` (WORKERS workers per
#                   GPU);
#           shard = one process per GPU (CUDA_VISIBLE_DEVICES=i, --shard i/N), each with
#                   WORKERS workers of its own (--cluster local:WORKERS), as
#                   scripts/benchmark.sh did (with a process pool) before --cluster.
# Prints one line per run and writes OUT_DIR/throughput.csv: what, how, rows, seconds,
# rows_per_s (appended to when it exists, so parts can be run in separate calls).
# Environment: PY (python, default python3), PARTS (default "layers train"), LAYERS,
# CONFIGS, EPOCHS, WORKERS.
set -euo pipefail
PY=${PY:-python3}
NGPU=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
if [ "${NGPU:-0}" -eq 0 ]; then
  echo "cluster_throughput.sh: no NVIDIA GPU found (nvidia-smi -L)" >&2
  exit 1
fi
OUT=${1:-/tmp/hwml-throughput}
LAYERS=${LAYERS:-400}
CONFIGS=${CONFIGS:-96}
EPOCHS=${EPOCHS:-10}
WORKERS=${WORKERS:-4}
PARTS=${PARTS:-layers train}
mkdir -p "$OUT"
[ -f "$OUT/throughput.csv" ] || echo "what,how,gpus,rows,seconds,rows_per_s" > "$OUT/throughput.csv"
half=$((LAYERS / 2))

rows() { [ -f "$1" ] && $PY -c "import pandas as pd, sys; print(len(pd.read_csv(sys.argv[1])))" "$1" || echo 0; }

record() {  # record WHAT HOW TABLE SECONDS
  local n
  n=$(rows "$3")
  echo "$1,$2,$NGPU,$n,$4,$($PY -c "print(round($n / max($4, 1e-9), 3))")" | tee -a "$OUT/throughput.csv"
}

per_gpu() {  # per_gpu CMD...: one process per GPU, each on its share (--shard i/N)
  local pids=()
  for ((i = 0; i < NGPU; i++)); do
    CUDA_VISIBLE_DEVICES=$i "$@" --shard "$i/$NGPU" &
    pids+=($!)
  done
  trap 'kill -TERM "${pids[@]}" 2>/dev/null; wait; exit 143' INT TERM
  local rc=0
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  trap - INT TERM
  return $rc
}

if [[ " $PARTS " == *" layers "* ]]; then
  layers=(layers --kinds conv2d,linear --samples "conv2d=$half,linear=$((LAYERS - half))" --seed 7
          --device cuda --no-progress)
  start=$SECONDS
  $PY -m hwml profile "${layers[@]}" --out "$OUT/layers-dask" --cluster local
  record layers dask "$OUT/layers-dask/layers.csv" $((SECONDS - start))
  start=$SECONDS
  per_gpu $PY -m hwml profile "${layers[@]}" --out "$OUT/layers-shard" --cluster process
  record layers shard "$OUT/layers-shard/layers.csv" $((SECONDS - start))
fi

if [[ " $PARTS " == *" train "* ]]; then
  # train takes its space and data set from the folder's provenance: seed both folders alike
  for how in dask shard; do
    mkdir -p "$OUT/train-$how"
    $PY -c "from hwml.data import update_provenance; import sys; update_provenance(sys.argv[1], {'dataset': 'cued-digits', 'image_size': 24})" "$OUT/train-$how"
  done
  train=(optimize benchmark train --n-configs "$CONFIGS" --epochs "$EPOCHS" --workers "$WORKERS"
         --device cuda --no-progress)
  start=$SECONDS
  $PY -m hwml "${train[@]}" --out "$OUT/train-dask" --cluster local
  record train dask "$OUT/train-dask/configs.csv" $((SECONDS - start))
  start=$SECONDS
  per_gpu $PY -m hwml "${train[@]}" --out "$OUT/train-shard" --cluster "local:$WORKERS"
  record train shard "$OUT/train-shard/configs.csv" $((SECONDS - start))
fi
echo "== $OUT/throughput.csv" >&2
