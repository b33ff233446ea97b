#!/usr/bin/env bash
# Leave-one-acoustic-model-out table and the uPIT (n_src 2) / n_src 1 comparison, at reduced
# scale: every run fine-tunes the same renderer-only checkpoint INIT (steps 1-3 of this
# recipe's README: the demo renderer's scenes, whose acoustics are those of kemar_ism) for
# STEPS steps on the domain-randomised mixer.
#
#   bash recipes/icassp_2023/convtasnet/leave_one_out.sh OUT INIT [STEPS]
#
# OUT/heldout/<model>/   16 held-out scenes per acoustic model (validation talkers, seed 7)
# OUT/train/<run>.pt     all (every model), no_<model> (one left out; kemar_ism, INIT's own
#                        acoustics, is never left out), upit_no_rostock_brir (n_src 2),
#                        no_<model>_rostock_brir (a fold without the measured BRIRs too)
# OUT/quality/<run>@<model>.json   benchmarks/bench_enhancer_quality.py on one held-out set
# OUT/table.md           python benchmarks/leave_one_out_table.py OUT/quality
#
# Environment: CLARITY_SE_DATA_ROOT (default ../shared/data), PYTHON (default python), GUARD,
# RESIDUAL_MIX and RESIDUAL_SOURCE (enhancer.guard, enhancer.residual_mix and
# enhancer.residual_source of the scoring, default true, 0.1 and mixture: the settings of the
# README's tables).
# Every step is skipped when its output exists, so a rerun after a kill resumes.
set -euo pipefail
OUT=${1:?usage: leave_one_out.sh OUT INIT [STEPS]}
INIT=$(realpath "${2:?usage: leave_one_out.sh OUT INIT [STEPS]}")
STEPS=${3:-300}
DATA=${CLARITY_SE_DATA_ROOT:-../shared/data}
PY=${PYTHON:-python}
GUARD=${GUARD:-true}
RESIDUAL_MIX=${RESIDUAL_MIX:-0.1}
RESIDUAL_SOURCE=${RESIDUAL_SOURCE:-mixture}
MODELS=(kemar_ism sphere_ism freefield_ism rostock_brir)
LEFT_OUT=(rostock_brir sphere_ism freefield_ism)
EPOCHS=3
PER_EPOCH=$((STEPS / EPOCHS))
mkdir -p "$OUT/train" "$OUT/quality"

for M in "${LEFT_OUT[@]}"; do
  if [ ! -f "$OUT/heldout/$M/clarity_data/metadata/scenes.dev.json" ]; then
    "$PY" -m clarity_se.cli demo-data "$OUT/heldout/$M" --train-scenes 0 --dev-scenes 16 \
      --seed 7 --acoustic-model "$M" --data-root "$DATA"
  fi
done

# train RUN N_SRC MODEL...: fine-tune INIT (n_src 1; widened to target + residual for n_src 2)
# on the mixer restricted to MODEL..., against the official reference (anechoic target)
train() {
  local run=$1 n_src=$2; shift 2
  local models; models=$(IFS=,; echo "$*")
  [ -f "$OUT/train/$run.pt" ] && return 0
  OMP_NUM_THREADS=1 "$PY" -m clarity_se.cli train -c recipes/icassp_2023/convtasnet/config.yaml \
    data.source=randomised "data.root=''" "data.dev_root=''" data.randomised.data_root="$DATA" \
    "data.randomised.acoustic_models=[$models]" data.target=target_anechoic_CH1 \
    data.dev_items=16 data.segment_s=2.0 model.n_src="$n_src" train.init_from="$INIT" \
    train.exp_dir="$OUT/train/$run" train.export="$OUT/train/$run.pt" train.batch_size=4 \
    train.epochs=$EPOCHS train.steps_per_epoch=$PER_EPOCH train.num_threads=1 \
    train.max_time_s=0 optim.scheduler=cosine optim.lr=5e-4 train.preemphasis_weight=0.5 \
    train.seed=0 train.progress=false
}

# quality RUN MODEL: the run's checkpoint on MODEL's held-out scenes (enhancer defaults but
# enhancer.guard=$GUARD, enhancer.residual_mix=$RESIDUAL_MIX, residual_source=$RESIDUAL_SOURCE)
quality() {
  local run=$1 m=$2
  [ -f "$OUT/quality/$run@$m.json" ] && return 0
  "$PY" benchmarks/bench_enhancer_quality.py --root "$OUT/heldout/$m" --systems convtasnet \
    --checkpoint "$(realpath "$OUT/train/$run.pt")" --set "convtasnet:guard=$GUARD" \
    --set "convtasnet:residual_source=$RESIDUAL_SOURCE" --residual-mix "$RESIDUAL_MIX" \
    --rng fast --workers 1 --out "$OUT/quality/$run@$m.json"
}

others() {  # the acoustic models other than $1
  local o; for o in "${MODELS[@]}"; do [ "$o" != "$1" ] && printf '%s ' "$o"; done; return 0
}

train all 1 "${MODELS[@]}"
# shellcheck disable=SC2046
train no_rostock_brir 1 $(others rostock_brir)
# shellcheck disable=SC2046
train upit_no_rostock_brir 2 $(others rostock_brir)
for run in all no_rostock_brir upit_no_rostock_brir; do quality "$run" rostock_brir; done
for M in sphere_ism freefield_ism; do
  # shellcheck disable=SC2046
  train "no_$M" 1 $(others "$M")
  quality all "$M"
  quality "no_$M" "$M"
done

# does the measured set help on other unseen acoustics? the same folds without rostock_brir
train no_sphere_ism_rostock_brir 1 kemar_ism freefield_ism
quality no_sphere_ism_rostock_brir sphere_ism
train no_freefield_ism_rostock_brir 1 kemar_ism sphere_ism
quality no_freefield_ism_rostock_brir freefield_ism

"$PY" benchmarks/leave_one_out_table.py "$OUT/quality" | tee "$OUT/table.md"
