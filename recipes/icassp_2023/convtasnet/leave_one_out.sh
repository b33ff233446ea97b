#!/usr/bin/env bash
# Leave-one-acoustic-model-out table and the uPIT (n_src 2) / n_src 1 comparison, at reduced
# scale (a small causal Conv-TasNet trained from scratch for STEPS steps per run on CPU).
#
#   bash recipes/icassp_2023/convtasnet/leave_one_out.sh OUT [STEPS]
#
# OUT/heldout/<model>/   16 held-out scenes per acoustic model (validation talkers, seed 7)
# OUT/train/<run>.pt     runs: all (every model), no_<model> (one left out), upit_no_rostock_brir
# OUT/quality/<run>@<model>.json   benchmarks/bench_enhancer_quality.py on one held-out set
# OUT/table.md           python benchmarks/leave_one_out_table.py OUT/quality
#
# Environment: CLARITY_SE_DATA_ROOT (default ../shared/data), PYTHON (default python).
# Every step is skipped when its output exists, so a rerun after a kill resumes.
set -euo pipefail
OUT=${1:?usage: leave_one_out.sh OUT [STEPS]}
STEPS=${2:-400}
DATA=${CLARITY_SE_DATA_ROOT:-../shared/data}
PY=${PYTHON:-python}
MODELS=(kemar_ism sphere_ism freefield_ism rostock_brir)
EPOCHS=4
PER_EPOCH=$((STEPS / EPOCHS))
mkdir -p "$OUT/train" "$OUT/quality"

for M in "${MODELS[@]}"; do
  if [ ! -f "$OUT/heldout/$M/clarity_data/metadata/scenes.dev.json" ]; then
    "$PY" -m clarity_se.cli demo-data "$OUT/heldout/$M" --train-scenes 0 --dev-scenes 16 \
      --seed 7 --acoustic-model "$M" --data-root "$DATA"
  fi
done

# train RUN N_SRC MODEL...: a small causal Conv-TasNet (N 64, B 64, H 128, Sc 64, X 5, R 2,
# L 128: 2.88 ms) from scratch on the domain-randomised mixer restricted to MODEL...
train() {
  local run=$1 n_src=$2; shift 2
  local models; models=$(IFS=,; echo "$*")
  [ -f "$OUT/train/$run.pt" ] && return 0
  OMP_NUM_THREADS=1 "$PY" -m clarity_se.cli train -c recipes/icassp_2023/convtasnet/config.yaml \
    data.source=randomised "data.root=''" "data.dev_root=''" data.randomised.data_root="$DATA" \
    "data.randomised.acoustic_models=[$models]" data.target=target_anechoic_CH1 \
    data.dev_items=16 data.segment_s=2.0 model.n_src="$n_src" model.n_filters=64 \
    model.bn_chan=64 model.hid_chan=128 model.skip_chan=64 model.n_blocks=5 model.n_repeats=2 \
    train.exp_dir="$OUT/train/$run" train.export="$OUT/train/$run.pt" train.batch_size=4 \
    train.epochs=$EPOCHS train.steps_per_epoch=$PER_EPOCH train.num_threads=1 \
    train.max_time_s=0 optim.scheduler=cosine optim.lr=2e-3 train.seed=0 train.progress=false
}

# quality RUN MODEL: the run's checkpoint on MODEL's held-out scenes (enhancer defaults)
quality() {
  local run=$1 m=$2
  [ -f "$OUT/quality/$run@$m.json" ] && return 0
  "$PY" benchmarks/bench_enhancer_quality.py --root "$OUT/heldout/$m" --systems convtasnet \
    --checkpoint "$(realpath "$OUT/train/$run.pt")" --rng fast --workers 1 \
    --out "$OUT/quality/$run@$m.json"
}

train all 1 "${MODELS[@]}"
for M in "${MODELS[@]}"; do quality all "$M"; done
for M in rostock_brir kemar_ism sphere_ism freefield_ism; do
  others=(); for O in "${MODELS[@]}"; do [ "$O" != "$M" ] && others+=("$O"); done
  train "no_$M" 1 "${others[@]}"
  quality "no_$M" "$M"
  if [ "$M" = rostock_brir ]; then
    train upit_no_rostock_brir 2 "${others[@]}"
    quality upit_no_rostock_brir rostock_brir
  fi
done

"$PY" benchmarks/leave_one_out_table.py "$OUT/quality" | tee "$OUT/table.md"
