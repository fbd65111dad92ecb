#!/usr/bin/env bash
# Measure this machine's CPU as a platform of its own (used by `make measure-cpu`, and by
# `make reproduce` on a GPU machine, whose host CPU is then measured too).
#
#   scripts/measure_cpu.sh [OUT_DIR] [PHASE ...]
#
# OUT_DIR defaults to data/cpu-<cpu name>-<N>-cores. PHASES (default: both, in order):
#   layers  the first random layer configurations of each kind with the sampling seed of
#           the GPU sweeps (scripts/measure.sh samples), so that every row has a partner
#           with the same key on the GPU                                 -> layers.csv
#   nets    the zoo networks and CELLS cell-space networks at BATCHES     -> nets.csv
# Runtime only: a CPU has no energy counter that hwml reads (rows say no_power). Sweeps
# are resumable: rerun the same command after an interruption. Nothing else should run
# on the machine meanwhile; a busy CPU times slow.
# Environment: PY (python, default python3), GIT_COMMIT (recorded when there is no .git),
# THREADS (intra-op threads, default: every core), SAMPLES (per kind, default
# conv2d=150,linear=80,maxpool2d=40,avgpool2d=40,batchnorm2d=28,activation=28,add=28),
# CELLS (20), BATCHES (1,8), LAYER_BUDGET_MS (30), NET_BUDGET_MS (300).
set -euo pipefail
PY=${PY:-python3}
CORES=$($PY -c 'import os; print(len(os.sched_getaffinity(0)))')
OUT=${1:-}
shift || true
if [ -z "$OUT" ]; then
  OUT=data/cpu-$($PY -c 'from hwml.hardware import open_device; from hwml.data import slugify; print(slugify(open_device("cpu").info["device_name"]))')-$CORES-cores
fi
PHASES=${*:-layers nets}
export OMP_NUM_THREADS=${THREADS:-$CORES}
COMMIT=${GIT_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
KINDS=conv2d,linear,maxpool2d,avgpool2d,batchnorm2d,activation,add
SAMPLES=${SAMPLES:-conv2d=150,linear=80,maxpool2d=40,avgpool2d=40,batchnorm2d=28,activation=28,add=28}
ZOO=$($PY -c 'from hwml.zoo import ZOO; print(",".join(ZOO))')
CELL_NETS=$($PY -c "print(','.join(f'cells:{i}' for i in range(${CELLS:-20})))")

for phase in $PHASES; do
  echo "== $phase ($CORES cores, $OMP_NUM_THREADS threads, out $OUT) $(date -u +%FT%TZ)" >&2
  start=$SECONDS
  case $phase in
    layers) $PY -m hwml profile layers --device cpu --out "$OUT" --kinds "$KINDS" \
              --samples "$SAMPLES" --seed 0 --budget-ms "${LAYER_BUDGET_MS:-30}" \
              --no-progress --git-commit "$COMMIT" ;;
    nets) $PY -m hwml profile nets --device cpu --out "$OUT" --nets "$ZOO${CELL_NETS:+,$CELL_NETS}" \
            --batches "${BATCHES:-1,8}" --budget-ms "${NET_BUDGET_MS:-300}" \
            --no-progress --git-commit "$COMMIT" ;;
    *) echo "measure_cpu.sh: unknown phase $phase" >&2; exit 2 ;;
  esac
  echo "== $phase done in $((SECONDS - start)) s" >&2
done
