#!/usr/bin/env bash
# Measure every dataset of the book on this machine's GPUs (used by `make measure`).
#
#   scripts/measure.sh [OUT_DIR] [PHASE ...]
#
# OUT_DIR defaults to data/<gpu name>. PHASES (default: all, in this order):
#   calibrate  matrix-product and copy ceilings, counter period, idle power
#   validate   hwml's energy per call beside a sustained two-read loop and Zeus (if
#              installed): 40 layers spread by runtime, every zoo network at
#              batch 1/16/64/128                                       -> validation.csv
#   samples    random layer configurations, fp32                      -> layers.csv
#   half       random layer configurations, fp16 and bf16             -> layers.csv
#   zoo        every distinct layer of every zoo network, batch 1/16/64 -> layers.csv
#   repeats    a few layers per kind measured 5 times (noise floor)   -> repeats.csv
#   nets       zoo networks, fp32 and fp16, batch 1/16/64/128, graph and eager power
#                                                                      -> nets.csv
#   netset     the network set (hwml.zoo.network_set: the zoo, NETSET_CELLS cell-space
#              networks, every other torchvision classifier), batch 1/8/32/128, in
#              NETSET_DTYPES (default float32 then float16), graph and eager power
#                                                                      -> nets.csv
#   netlayers  every layer of every zoo network timed in place: fp32 batch 64 with
#              power, fp32 batch 1/16/128 runtime only             -> net_layers.csv
# Sweeps are resumable: rerun the same command after an interruption. With several GPUs
# (of one model) each sweep's rows are spread over them by a Dask cluster, one worker per
# GPU (CLUSTER, default local; netlayers runs in one process on GPU 0).
# Environment: PY (python, default python3), GIT_COMMIT (recorded when there is no
# .git), SAMPLES_SCALE (fraction of the fp32 sample counts, default 1), HALF_SCALE
# (fraction for fp16/bf16, default 0.3), LAYERS_FROM (dataset the validation picks its
# layers from, default data/nvidia-h200-old-meter), CLUSTER (hwml --cluster: local, local:N
# or tcp://HOST:PORT).
set -euo pipefail
PY=${PY:-python3}
NGPU=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
if [ "${NGPU:-0}" -eq 0 ]; then
  echo "measure.sh: no NVIDIA GPU found (nvidia-smi -L); nothing to measure" >&2
  exit 1
fi
OUT=${1:-}
shift || true
if [ -z "$OUT" ]; then
  OUT=data/$($PY -c 'import torch; from hwml.data import slugify; print(slugify(torch.cuda.get_device_name(0)))')
fi
PHASES=${*:-calibrate validate samples half zoo repeats nets netset netlayers}
S=${SAMPLES_SCALE:-1}
H=${HALF_SCALE:-0.3}
LAYERS_FROM=${LAYERS_FROM:-data/nvidia-h200-old-meter}
ZOO_BATCHES=${ZOO_BATCHES:-1,16,64}
NETLAYER_NETS=${NETLAYER_NETS:-all}          # networks whose in-place layers get power
NETLAYER_BATCHES=${NETLAYER_BATCHES:-1,16,128} # further batches timed in place (no power)
REPEAT_LAYERS=${REPEAT_LAYERS:-12}
NETSET_CELLS=${NETSET_CELLS:-40}
NETSET_DTYPES=${NETSET_DTYPES:-float32 float16}
# The commit of the code that measures (a copy without .git can pass GIT_COMMIT).
COMMIT=${GIT_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
n() { $PY -c "print(max(1, round($1 * ${2:-$S})))"; }
KINDS=conv2d,linear,maxpool2d,avgpool2d,batchnorm2d,activation,add
counts() { echo "conv2d=$(n 1000 "$1"),linear=$(n 380 "$1"),maxpool2d=$(n 180 "$1"),avgpool2d=$(n 180 "$1"),batchnorm2d=$(n 80 "$1"),activation=$(n 80 "$1"),add=$(n 80 "$1")"; }

# Where the rows are measured (hwml --cluster): local = one Dask worker per GPU of this
# machine (this process alone with one GPU), local:N, or a scheduler's tcp://HOST:PORT.
CLUSTER=${CLUSTER:-local}

sharded() {  # run "hwml profile ..." once; its rows are spread over the GPUs by --cluster
  # (each worker measures on its own GPU with its share of the host's cores; this process
  # alone appends the rows, so an interruption keeps every finished row). A stop (TERM or
  # INT, e.g. from `timeout`) is passed on, and this script waits until the sweep has
  # recorded its rows and its run before it exits, so that whatever runs next (a copy of
  # the folder) sees the finished files.
  $PY -m hwml profile "$@" --out "$OUT" --device cuda --cluster "$CLUSTER" \
    --no-progress --git-commit "$COMMIT" &
  local child=$!
  trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 143' TERM INT
  local rc=0
  wait "$child" || rc=$?
  trap - TERM INT
  return $rc
}

for phase in $PHASES; do
  echo "== $phase ($NGPU GPU) $(date -u +%FT%TZ)" >&2
  case $phase in
    calibrate) CUDA_VISIBLE_DEVICES=0 $PY -m hwml profile calibrate --out "$OUT" --git-commit "$COMMIT" ;;
    validate) sharded validate --layers-from "$LAYERS_FROM" --validate-layers 40 --batches 1,16,64,128 ;;
    samples) sharded layers --kinds $KINDS --samples "$(counts "$S")" ;;
    half) sharded layers --kinds $KINDS --samples "$(counts "$H")" --dtype float16
          sharded layers --kinds $KINDS --samples "$(counts "$H")" --dtype bfloat16 ;;
    zoo) sharded layers --samples 0 --zoo-batches "$ZOO_BATCHES" --kinds $KINDS ;;
    repeats) sharded layers --repeat 5 --seed 1 --kinds conv2d,linear,maxpool2d,activation \
               --samples "$REPEAT_LAYERS" ;;
    nets) sharded nets --batches 1,16,64,128 --dtype float32
          sharded nets --batches 1,16,64,128 --dtype float16 ;;
    netset) for dt in $NETSET_DTYPES; do
              sharded nets --nets set --cells "$NETSET_CELLS" --batches 1,8,32,128 --dtype "$dt" \
                --retry-failed
            done ;;
    netlayers) sharded net-layers --nets "$NETLAYER_NETS" --batches 64 --dtype float32
               sharded net-layers --no-power --batches "$NETLAYER_BATCHES" --dtype float32 ;;
    *) echo "measure.sh: unknown phase $phase" >&2; exit 2 ;;
  esac
done
echo "== done $(date -u +%FT%TZ): $OUT" >&2
