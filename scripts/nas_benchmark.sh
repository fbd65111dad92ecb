#!/usr/bin/env bash
# Build the platform-aware NAS benchmark on this machine's GPU (survey section 4.4):
# reference networks and a seeded pool of cell-space architectures, each measured alone on
# GPU 0 (eager and CUDA-graph runtime, power and energy, peak memory, at batch 1 and 64)
# and trained on cued-digits (WORKERS trainings at a time), in chunks; rows are appended
# as they come, a rerun resumes, and TIME_LIMIT_S stops it cleanly keeping its rows.
#
#   scripts/nas_benchmark.sh [OUT_DIR]
#
# OUT_DIR defaults to data/nas-<gpu name>-cued-digits (/tmp/hwml-nas-smoke with
# DEVICE=cpu). Environment: PY (python, default python3), GIT_COMMIT (recorded when there
# is no .git), DEVICE (cuda; cpu: a dry run on the CPU, no power, with SPACE=tiny by
# default), SPACE (default | tiny), N_ARCHS (256), EPOCHS (5), BATCHES (1,64), WORKERS
# (4), CHUNK (32), TIME_LIMIT_S (start no new work after this many seconds, keeping the rows
# so far: rerun the same command to finish; default none), POWER_PERIODS (energy-counter updates per power window, 2), REFERENCES
# (all | none | names), REFERENCE_RATES (learning rates at which the reference networks are
# trained again, each into OUT_DIR/references-gpu/lr<rate>, after the pool is complete;
# default "0.1 0.03 0.01" on a GPU, none with DEVICE=cpu). The searches (hwml nas search)
# need no GPU and run from the table.
set -euo pipefail
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
if [ "$DEVICE" = cpu ]; then
  SPACE=${SPACE:-tiny}
  N_ARCHS=${N_ARCHS:-3}
  EPOCHS=${EPOCHS:-1}
  WORKERS=${WORKERS:-1}
  REFERENCES=${REFERENCES:-none}
  REFERENCE_RATES=${REFERENCE_RATES:-}
  LIMIT=${TIME_LIMIT_S:-}
else
  if ! nvidia-smi -L >/dev/null 2>&1; then
    echo "nas_benchmark.sh: no NVIDIA GPU found (nvidia-smi -L); DEVICE=cpu for a dry run" >&2
    exit 1
  fi
  LIMIT=${TIME_LIMIT_S:-}
  REFERENCE_RATES=${REFERENCE_RATES-0.1 0.03 0.01}
fi
OUT=${1:-}
if [ -z "$OUT" ]; then
  if [ "$DEVICE" = cpu ]; then
    OUT=/tmp/hwml-nas-smoke
  else
    OUT=data/nas-$($PY -c 'import torch; from hwml.data import slugify; print(slugify(torch.cuda.get_device_name(0)))')-cued-digits
  fi
fi
COMMIT=${GIT_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
args=(--out "$OUT" --device "$DEVICE" --space "${SPACE:-default}" --n-archs "${N_ARCHS:-256}"
      --epochs "${EPOCHS:-5}" --batches "${BATCHES:-1,64}" --workers "${WORKERS:-4}"
      --chunk "${CHUNK:-32}" --power-periods "${POWER_PERIODS:-2}"
      --references "${REFERENCES:-all}" --no-progress --git-commit "$COMMIT")
[ -n "$LIMIT" ] && args+=(--time-limit-s "$LIMIT")
echo "== nas benchmark ($DEVICE, out $OUT) $(date -u +%FT%TZ)" >&2
start=$SECONDS
$PY -m hwml nas benchmark "${args[@]}"
echo "== done in $((SECONDS - start)) s $(date -u +%FT%TZ): $OUT" >&2
$PY -m hwml nas summary --out "$OUT"
# The references once more, alone, at each learning rate: the pool's recipe trains the deep
# references poorly, and these rows show how much a gentler rate changes (chapter 11).
if [ -n "${REFERENCE_RATES:-}" ] && [ "${REFERENCES:-all}" != none ]; then
  if [ -n "$LIMIT" ] && [ $((SECONDS - start)) -ge "$LIMIT" ]; then
    echo "== time limit reached: the references at other rates are left for a rerun" >&2
    exit 0
  fi
  for lr in $REFERENCE_RATES; do
    ref_args=("${args[@]}")
    for i in "${!ref_args[@]}"; do
      case "${ref_args[$i]}" in
        --out) ref_args[$((i + 1))]="$OUT/references-gpu/lr$lr" ;;
        --n-archs) ref_args[$((i + 1))]=0 ;;
      esac
    done
    echo "== references at learning rate $lr $(date -u +%FT%TZ)" >&2
    $PY -m hwml nas benchmark "${ref_args[@]}" --learning-rate "$lr" --workers 5
  done
fi
