#!/usr/bin/env bash
# Build the HyperPower CNN benchmark on this machine's GPUs, then run live searches.
#
#   scripts/benchmark.sh [OUT_DIR] [PHASE ...]
#
# OUT_DIR defaults to data/hyperpower-<gpu name> (a scratch folder under /tmp when SCALE
# is not 1). PHASES (default: all, in this order):
#   structures  phase (a): inference runtime, power, energy and peak memory of N_STRUCTURES
#               distinct structures at inference batch BATCH, one Dask worker per GPU and
#               nothing else on it                                  -> structures.csv
#   train       phase (b): N_CONFIGS configurations (structure + learning rate, momentum,
#               weight decay) trained once each for EPOCHS epochs, WORKERS trainings at
#               a time on every GPU (WORKERS Dask workers per GPU)   -> configs.csv
#   live        live searches that train every chosen network: HW-IECI and hardware-unaware
#               EI, one search per method and seed in LIVE_SEEDS, side by side on the
#               workers (one per GPU), budgets at the QUANTILE of the measured power and
#               memory -> live/<method>-s<seed>.csv
#   live-batch  batch-parallel HW-IECI, LIVE_BATCH (default 2) trainings in flight per
#               search on as many workers (local:LIVE_BATCH; LIVE_BATCH_CLUSTER to change),
#               one search per seed in LIVE_SEEDS -> live-batch/hw-ieci-q<Q>-s<seed>.csv
#   mobo        live multi-objective searches (test error, energy per image, runtime):
#               HW-EHVI, ParEGO, NSGA-II and random, MOBO_SEEDS seeds (default 3) of
#               LIVE_EVALS evaluations, each run a task of the workers (one per GPU)
#               -> mobo-live/<method>-s<seed>.csv
# Every phase is resumable: rerun the same command after an interruption. The tabular
# searches (hwml optimize run, hwml optimize parallel) need no GPU and run from the
# committed tables. CLUSTER (hwml --cluster, default local: one Dask worker per GPU) says
# where structures, train and live run; a scheduler's tcp://HOST:PORT runs them on a cluster.
# Environment: PY (python, default python3), GIT_COMMIT (recorded when there is no .git),
# SCALE (fraction of every count, default 1; e.g. 0.05 for a smoke run), WORKERS (4),
# EPOCHS (10), BATCH (256), N_STRUCTURES (400), N_CONFIGS (2500), LIVE_EVALS (30),
# LIVE_SEEDS (0; e.g. 0-4),
# QUANTILE (0.6), FILTERS (16-512) and DENSE (32-4096): the space's ranges, DATASET
# (cued-digits, the book's task, where larger networks reach lower error, see
# hwml/tasks/images.py; digits the bundled digits alone, where they do not; cued-digits-4x4
# a harder variant; a data set other than digits puts -DATASET at the end of the default
# OUT_DIR; train and live read it from the folder), IMAGE_SIZE (input side: 32, or
# 24 for cued-digits, its native size, where the error kept falling with size up to 128
# filters on a CPU check while at 32 it stopped at 64; see hwml/tasks/images.py), DEVICE (cuda;
# cpu runs everything on the CPU, in one process (CPU_CLUSTER to change), no budgets: a dry
# run of the script with small FILTERS/DENSE), TRAIN_TIMEOUT_S (stop the train phase after this many seconds, keeping
# its rows, and go on: rerun later to finish; default none).
set -euo pipefail
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
DATASET=${DATASET:-cued-digits}
if [ "$DATASET" = cued-digits ]; then IMAGE_SIZE=${IMAGE_SIZE:-24}; else IMAGE_SIZE=${IMAGE_SIZE:-32}; fi  # native sizes
NGPU=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
[ "$DEVICE" = cpu ] && NGPU=1
if [ "${NGPU:-0}" -eq 0 ]; then
  echo "benchmark.sh: no NVIDIA GPU found (nvidia-smi -L); nothing to measure" >&2
  exit 1
fi
S=${SCALE:-1}
OUT=${1:-}
shift || true
if [ -z "$OUT" ]; then
  if [ "$S" = 1 ] && [ "$DEVICE" != cpu ]; then
    OUT=data/hyperpower-$($PY -c 'import torch; from hwml.data import slugify; print(slugify(torch.cuda.get_device_name(0)))')
    [ "$DATASET" = digits ] || OUT=$OUT-$DATASET
  else
    OUT=/tmp/hwml-benchmark-smoke-$S
    [ "$DATASET" = digits ] || OUT=$OUT-$DATASET
  fi
fi
PHASES=${*:-structures train live live-batch mobo}
n() { $PY -c "print(max($2, round($1 * $S)))"; }
WORKERS=${WORKERS:-4}
EPOCHS=${EPOCHS:-10}
BATCH=${BATCH:-256}
N_STRUCTURES=$(n "${N_STRUCTURES:-400}" 8)
N_CONFIGS=$(n "${N_CONFIGS:-2500}" 16)
LIVE_EVALS=$(n "${LIVE_EVALS:-30}" 6)
QUANTILE=${QUANTILE:-0.6}
COMMIT=${GIT_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}

# Where the work runs (hwml --cluster): local = one Dask worker per GPU of this machine
# (WORKERS per GPU for the trainings; this process alone with one GPU and one worker), or a
# scheduler's tcp://HOST:PORT.
CLUSTER=${CLUSTER:-local}
[ "$DEVICE" = cpu ] && CLUSTER=${CPU_CLUSTER:-process}

bench() {  # run "hwml optimize benchmark ..." once; its rows are spread over the workers
  $PY -m hwml optimize benchmark "$@" --out "$OUT" --device "$DEVICE" --cluster "$CLUSTER" \
    --no-progress --git-commit "$COMMIT"
}

live() {  # live METHODS [BATCH [OUT_TEMPLATE [CLUSTER]]]: searches side by side on the workers
  local budgets=(--power-quantile "$QUANTILE" --mem-quantile "$QUANTILE")
  [ "$DEVICE" = cpu ] && budgets=()  # nothing measured power or memory
  $PY -m hwml optimize live --device "$DEVICE" --structures "$OUT" \
    --method "$1" --batch "${2:-1}" --seed "${LIVE_SEEDS:-0}" --n-evals "$LIVE_EVALS" --n-init 5 \
    --epochs "$EPOCHS" "${budgets[@]}" --out "${3:-$OUT/live/{method\}-s{seed\}.csv}" \
    --cluster "${4:-$CLUSTER}" --no-progress --git-commit "$COMMIT"
}

for phase in $PHASES; do
  echo "== $phase ($NGPU GPU, out $OUT) $(date -u +%FT%TZ)" >&2
  start=$SECONDS
  case $phase in
    structures) bench structures --n-structures "$N_STRUCTURES" --batch "$BATCH" \
                  --dataset "$DATASET" --image-size "$IMAGE_SIZE" \
                  --filters "${FILTERS:-16-512}" --dense-units "${DENSE:-32-4096}" ;;
    train)
      if [ -n "${TRAIN_TIMEOUT_S:-}" ]; then
        # timeout signals the whole process group: the driver and its workers stop, the
        # rows written so far stay, and a rerun trains only what is missing
        timeout --kill-after=20 "$TRAIN_TIMEOUT_S" \
          $PY -m hwml optimize benchmark train --n-configs "$N_CONFIGS" --epochs "$EPOCHS" \
            --workers "$WORKERS" --out "$OUT" --device "$DEVICE" --cluster "$CLUSTER" \
            --no-progress --git-commit "$COMMIT" \
          || echo "benchmark.sh: train phase stopped (timeout or error); rerun to resume" >&2
      else
        bench train --n-configs "$N_CONFIGS" --epochs "$EPOCHS" --workers "$WORKERS"
      fi ;;
    live)
      mkdir -p "$OUT/live"
      live hw-ieci,ei ;;
    live-batch)
      # batch-parallel HW-IECI: LIVE_BATCH trainings in flight per search, on LIVE_BATCH
      # workers of this machine (spread over its GPUs in turn; all on one GPU if one)
      mkdir -p "$OUT/live-batch"
      q=${LIVE_BATCH:-2}
      live hw-ieci "$q" "$OUT/live-batch/{method}-q$q-s{seed}.csv" "${LIVE_BATCH_CLUSTER:-local:$q}" ;;
    mobo)
      # every (method, seed) run is a task of the cluster: one run per GPU at a time
      $PY -m hwml.hyperpower.mobo_bench --folder "$OUT" --live "$OUT/mobo-live" \
        --device "$DEVICE" --cluster "$CLUSTER" --methods hw-ehvi parego nsga random \
        --seeds "${MOBO_SEEDS:-3}" --evals "$LIVE_EVALS" --init 5 --epochs "$EPOCHS" ;;
    *) echo "benchmark.sh: unknown phase $phase" >&2; exit 2 ;;
  esac
  echo "== $phase done in $((SECONDS - start)) s" >&2
done
$PY -m hwml optimize benchmark summary --out "$OUT"
echo "== done $(date -u +%FT%TZ): $OUT" >&2
